"""A process that appends to a real ledger as fast as it can, for the crash test.

Run as ``python -m tests.integration.ledger_writer DATA_DIR``. It opens the node's chain
exactly as an agent does (the database, the ledger, its verification), prints
``open SEQ HASH`` once the chain verified, then appends one entry after another (a hold,
then its release) and prints ``ack SEQ HASH`` after each append returns — what an agent
would acknowledge to a peer. The test kills it with SIGKILL at random instants.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from edgecoder.clock import SystemClock
from edgecoder.events import EventHub
from edgecoder.ledger.book import Ledger, Posting
from edgecoder.ledger.entries import ESCROW, TREASURY
from edgecoder.security.identity import NodeIdentity
from edgecoder.storage.database import Database

SEED = bytes(range(32))
VOUCH = "ab" * 32
ALLOWANCE = 10**12


async def main(data_dir: Path) -> None:
    database = await Database.open(data_dir)
    ledger = Ledger(NodeIdentity(SEED), database, SystemClock(), EventHub(),
                    vouches=lambda ref, node: ALLOWANCE if ref == VOUCH else None)  # fmt: skip
    await ledger.open()
    print("open", ledger.state.seq, ledger.state.head, flush=True)
    if ledger.state.seq == 0:
        await ledger.append(Posting("allowance", ALLOWANCE, TREASURY, VOUCH))
    n = ledger.state.seq
    while True:
        n += 1
        for posting in (
            Posting("hold", 7, ESCROW, f"t{n}"),
            Posting("release", 7, ESCROW, f"t{n}"),
        ):
            if posting.kind == "release" and f"t{n}" not in ledger.state.holds:
                continue
            [entry] = await ledger.append(posting)
            print("ack", entry.entry.seq, entry.hash_hex, flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
