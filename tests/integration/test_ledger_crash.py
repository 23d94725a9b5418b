"""kill -9 at random instants while a ledger appends loses nothing acknowledged (§10).

A real ledger on a real database (:mod:`tests.integration.ledger_writer`, the agent's own
code) appends as fast as it can and says which entries it acknowledged; the test kills it
with SIGKILL at a random instant, 50 times. After every restart the chain verifies (the
ledger refuses to open one that does not) and holds every entry ever acknowledged, at
the place and with the hash acknowledged.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgecoder.ledger.entries import GENESIS_HASH, verify_segment
from edgecoder.security.identity import NodeIdentity
from edgecoder.storage import ledger_rows
from tests.integration.ledger_writer import SEED

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KILLS = 50
ROOT = Path(__file__).resolve().parents[2]


def test_fifty_kills_lose_no_acknowledged_entry_and_leave_a_chain_that_verifies(
    tmp_path: Path,
) -> None:
    rng = random.Random(20261207)
    acked: dict[int, str] = {}
    node = NodeIdentity(SEED)
    for kill in range(KILLS):
        with subprocess.Popen(
            [sys.executable, "-m", "tests.integration.ledger_writer", str(tmp_path)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ) as writer:  # fmt: skip
            assert writer.stdout is not None
            assert writer.stderr is not None
            # Once it has opened (and verified) the chain, it is killed mid-append.
            opened = writer.stdout.readline().split()
            assert opened[:1] == ["open"], writer.stderr.read()
            assert int(opened[1]) >= max(acked, default=0)
            time.sleep(rng.uniform(0.0, 0.3))
            writer.send_signal(signal.SIGKILL)
            rest = writer.stdout.read()
        for line in rest.splitlines(keepends=True):
            if line.endswith("\n"):  # a line cut short by the kill acknowledged nothing
                word, seq, hash_hex = line.split()
                assert word == "ack"
                acked[int(seq)] = hash_hex
        # What the disk holds now: a chain that verifies and has everything acknowledged.
        db = sqlite3.connect(tmp_path / "edgecoder.db")
        try:
            chain = ledger_rows.entries_of(db, node.node_id)
        finally:
            db.close()
        assert verify_segment(GENESIS_HASH, chain, node.public_key) == -1, kill
        held = {e.entry.seq: e.hash_hex for e in chain}
        assert all(held.get(seq) == h for seq, h in acked.items()), kill
        assert [e.entry.seq for e in chain] == list(range(1, len(chain) + 1))
    assert len(acked) > KILLS  # it did append between the kills
