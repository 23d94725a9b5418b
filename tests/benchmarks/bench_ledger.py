"""The credit ledger's costs, measured in one run; prints JSON.

Run: ``.venv/bin/python tests/benchmarks/bench_ledger.py [DIR]`` (about ten seconds; it
uses both cores for the two-thread figures, so run it on an otherwise quiet machine). The
database goes in a temporary directory under ``DIR`` (default: the system's temporary
directory): put it on the disk whose durable-write rate you want, an SD card is far slower
than an SSD.

* ``durable_appends``: :meth:`Ledger.append` on a real database in a temporary directory
  (WAL, ``synchronous=FULL``: every commit is on disk before it returns), one entry per
  transaction (a hold, then its release) and a payment's two entries (release and spend,
  :meth:`Ledger.pay`) per transaction: entries and commits per second. Disk-bound: the
  figure is this machine's fsync rate as much as the code's.
* ``verify_10k_chain``: a 10,000-entry signed chain (allowance, then holds, releases and
  spends), verified whole by the signed-chain verifier (every link hash and every Ed25519
  signature) — the compiled core and its pure twin side by side, on one thread and on two
  threads each verifying half (the chain split at its middle, the second half starting
  from the first half's last hash) — in entries per second and whole chains per second.
  ``end_to_end`` adds what ``edgecoder credits verify`` does besides (the canonical
  encoding of every body and the chain rules, in Python), on the core this run selected.
* ``gossip``: the wire bytes of a signed ``ledger_head`` record — with no vouch, with a
  node with standing's two, with a founder's eight — beside the peer record and the
  capability advert that a gossip message carries for every live member it names
  (``MeshNode._encode``), and what the head adds per member named and per node per
  gossip period (every push-pull message carries its sender's own records: one ``sync``
  a period when views agree, and each reply while they differ).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

from edgecoder import __version__, speedups
from edgecoder.clock import SystemClock
from edgecoder.events import EventHub
from edgecoder.inference.types import ModelInfo
from edgecoder.ledger import checkpoints
from edgecoder.ledger.book import Ledger, Posting
from edgecoder.ledger.entries import ESCROW, GENESIS_HASH, TREASURY, SignedEntry, new_entry
from edgecoder.ledger.heads import HEAD, Head
from edgecoder.ledger.verification import verify_chain
from edgecoder.ledger.vouches import VOUCH_QUOTA, Vouch, make_vouch
from edgecoder.mesh.advert import local_advert
from edgecoder.mesh.peer_info import ADVERT, PEER, peer_body
from edgecoder.security.identity import NodeIdentity
from edgecoder.storage.database import Database
from edgecoder.wire.records import sign_record

CHAIN = 10_000
APPENDS = 400
PAYMENTS = 200
REPEATS = 3
VOUCH = "ab" * 32
TTL_MS = 3_600_000


def _best(fn: Callable[[], object]) -> float:
    """The shortest of :data:`REPEATS` runs, in seconds."""
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


# -- durable appends ----------------------------------------------------------------------


async def _appends(data_dir: Path) -> dict[str, Any]:
    identity = NodeIdentity.generate()
    worker = NodeIdentity.generate().node_id
    database = await Database.open(data_dir)
    single_s = pay_s = float("inf")
    try:
        ledger = Ledger(identity, database, SystemClock(), EventHub(),
                        vouches=lambda ref, node: 10**12 if ref == VOUCH else None)  # fmt: skip
        await ledger.open()
        await ledger.append(Posting("allowance", 10**12, TREASURY, VOUCH))
        for r in range(REPEATS):  # the two kinds interleaved, the best of each kept
            start = time.perf_counter()
            for i in range(APPENDS // 2):
                await ledger.append(Posting("hold", 100, ESCROW, f"t{r}.{i}"))
                await ledger.append(Posting("release", 100, ESCROW, f"t{r}.{i}"))
            single_s = min(single_s, time.perf_counter() - start)
            for i in range(PAYMENTS):
                ledger.reserve(f"p{r}.{i}", 100)
                await ledger.hold(f"p{r}.{i}")
            start = time.perf_counter()
            for i in range(PAYMENTS):
                total = ledger.spent_to(worker) + 40
                await ledger.pay(f"p{r}.{i}", worker, total, f"{r:032x}{i:032x}")
            pay_s = min(pay_s, time.perf_counter() - start)
        seq = ledger.state.seq
    finally:
        await database.close()
    return {
        "one_entry_per_commit": {"entries_per_s": round(APPENDS / single_s),
                                 "commits_per_s": round(APPENDS / single_s)},
        "payment_two_entries_per_commit": {"entries_per_s": round(2 * PAYMENTS / pay_s),
                                           "commits_per_s": round(PAYMENTS / pay_s)},
        "chain_length_at_end": seq,
    }  # fmt: skip


# -- verification -------------------------------------------------------------------------


def _chain(identity: NodeIdentity) -> list[SignedEntry]:
    """A valid chain of :data:`CHAIN` entries: an allowance, then hold, release, spend."""
    party = NodeIdentity.generate().node_id
    made = [new_entry(identity, None, kind="allowance", amount=10**9, party=TREASURY,
                      ref=VOUCH, ts=1)]  # fmt: skip
    total, i = 0, 0
    while len(made) < CHAIN:
        kind = ("hold", "release", "spend")[i % 3]
        if kind == "spend":
            total += 7
            entry = new_entry(identity, made[-1], kind="spend", amount=7, party=party,
                              ref=f"{i:064x}", total=total, ts=1)  # fmt: skip
        else:
            entry = new_entry(identity, made[-1], kind=kind, amount=50, party=ESCROW,
                              ref=f"task-{i // 3}", ts=1)  # fmt: skip
        made.append(entry)
        i += 1
    return made


def _verifier(
    chain: ModuleType, bodies: list[bytes], hashes: list[bytes], sigs: list[bytes], key: bytes
) -> dict[str, Any]:
    genesis = bytes.fromhex(GENESIS_HASH)

    def one() -> None:
        assert chain.verify_signed(genesis, bodies, hashes, sigs, key) == -1

    half = len(bodies) // 2

    def segment(lo: int, hi: int) -> int:
        prev = genesis if lo == 0 else hashes[lo - 1]
        return int(chain.verify_signed(prev, bodies[lo:hi], hashes[lo:hi], sigs[lo:hi], key))

    with ThreadPoolExecutor(2) as pool:

        def two() -> None:
            assert list(pool.map(segment, (0, half), (half, len(bodies)))) == [-1, -1]

        one_s, two_s = _best(one), _best(two)
    return {
        "one_thread": {"entries_per_s": round(len(bodies) / one_s),
                       "chains_per_s": round(1 / one_s, 2)},
        "two_threads": {"entries_per_s": round(len(bodies) / two_s),
                        "chains_per_s": round(1 / two_s, 2)},
        "two_thread_speedup": round(one_s / two_s, 2),
    }  # fmt: skip


def _verification() -> dict[str, Any]:
    identity = NodeIdentity.generate()
    entries = _chain(identity)
    bodies = [e.entry.encode() for e in entries]
    hashes = [e.hash for e in entries]
    sigs = [e.sig for e in entries]
    out: dict[str, Any] = {"entries": len(entries)}
    for kind in ("compiled", "pure"):
        try:
            chain = importlib.import_module(f"edgecoder.speedups._{kind}.chain")
        except ImportError as exc:
            out[kind] = f"unavailable: {exc}"
            continue
        out[kind] = _verifier(chain, bodies, hashes, sigs, identity.public_key)
    if isinstance(out.get("compiled"), dict) and isinstance(out.get("pure"), dict):
        out["compiled_over_pure_one_thread"] = round(
            out["compiled"]["one_thread"]["entries_per_s"]
            / out["pure"]["one_thread"]["entries_per_s"], 2)  # fmt: skip

    def end_to_end() -> None:
        report = verify_chain(identity.node_id, entries, identity.public_key,
                              lambda ref, node: 10**9 if ref == VOUCH else None)  # fmt: skip
        assert report.verified, report

    seconds = _best(end_to_end)
    out["end_to_end"] = {
        "core": "compiled" if speedups.USING_EXTENSIONS else "pure",
        "entries_per_s": round(len(entries) / seconds),
        "chains_per_s": round(1 / seconds, 2),
        "what": "canonical encoding + signed-chain verifier + chain rules, one thread",
    }
    return out


# -- gossip -------------------------------------------------------------------------------


def _gossip() -> dict[str, Any]:
    now = SystemClock().now_ms()
    me, key = NodeIdentity.generate(), NodeIdentity.generate()
    network_key = key.public_key.hex()

    def network_vouch(node: str) -> Vouch:
        return make_vouch(key, network="office", network_key=network_key, node=node,
                          amount=100_000, issued_ms=now)  # fmt: skip

    def head(vouches: tuple[Vouch, ...]) -> int:
        body = Head(network_key, 1234, "ab" * 32, 98_765, 4_321, 100_000, vouches).body()
        return len(sign_record(me, HEAD, now, body, now, TTL_MS).wire_bytes())

    founders = tuple(network_vouch(NodeIdentity.generate().node_id) for _ in range(8))
    standing = network_vouch(me.node_id)
    with_standing = tuple(
        make_vouch(me, network="office", network_key=network_key,
                   node=NodeIdentity.generate().node_id, amount=100_000, issued_ms=now,
                   slot=slot, standing=standing)
        for slot in range(1, VOUCH_QUOTA + 1)
    )  # fmt: skip
    peer = peer_body("http://192.168.1.23:4301", ["192.168.1.23", "fd00::23"], 4304, "office",
                     __version__)  # fmt: skip
    model = ModelInfo(name="qwen2.5-coder:7b-instruct-q4_K_M", backend="ollama",
                      context_length=32768, size_bytes=4_683_087_519, digest="ab" * 32,
                      loaded=True)  # fmt: skip
    advert = local_advert(models=[model], backend="ollama", calibration=None, slots=2,
                          queue_depth=0, owner_busy=False, price_pct=100).as_body()  # fmt: skip
    peer_bytes = len(sign_record(me, PEER, now, peer, now, TTL_MS).wire_bytes())
    advert_bytes = len(sign_record(me, ADVERT, now, advert, now, TTL_MS).wire_bytes())
    heads = {"no_vouch": head(()), "two_with_standing": head(with_standing),
             "eight_founders": head(founders)}  # fmt: skip
    without = peer_bytes + advert_bytes
    return {
        "record_bytes": {"peer": peer_bytes, "advert_one_model": advert_bytes,
                         "ledger_head": heads},
        "per_member_named_in_a_message": {
            "without_head": without,
            **{f"with_head_{name}": without + size for name, size in heads.items()},
            "increase_pct_no_vouch": round(100 * heads["no_vouch"] / without, 1),
            "increase_pct_eight_founders": round(100 * heads["eight_founders"] / without, 1),
        },
        "added_per_node_per_period_bytes": {
            "basis": "its own head in its push-pull sync (mesh.push_pull_periods = 1; a "
                     "peer whose view agrees sends nothing back), plus, while there is "
                     "news, the head of every live member a ping or ack names (up to "
                     "mesh.max_piggyback = 8) and its own in each sync reply",
            "steady_no_vouch": heads["no_vouch"],
            "steady_eight_founders": heads["eight_founders"],
            "with_8_members_named_no_vouch": (1 + 8) * heads["no_vouch"],
        },
    }  # fmt: skip


# -- checkpoints -----------------------------------------------------------------------


def _checkpoints(heads: int = 10_000) -> dict[str, Any]:
    """Building, checking and proving a checkpoint over ``heads`` chain heads (more than a
    gossiped checkpoint may list: this is the work, not the record)."""
    digits = str.maketrans("0123456789", "abcdefghij")
    held = {f"{i:032d}".translate(digits): (i + 1, f"{i:064x}") for i in range(heads)}
    built = checkpoints.build(7, checkpoints.NO_CHECKPOINT, held)
    node, (seq, head) = next(iter(sorted(held.items())))
    proof = built.proof_for(node) or []
    own, root = checkpoints.leaf(node, seq, head), bytes.fromhex(built.root)
    build_s = _best(lambda: checkpoints.build(7, checkpoints.NO_CHECKPOINT, held))
    root_s = _best(lambda: checkpoints.merkle_root(built.leaves()))
    verify_s = _best(lambda: checkpoints.verify_proof(own, proof, root))
    return {
        "heads": heads,
        "build_ms": round(build_s * 1000, 1),
        "recompute_root_ms": round(root_s * 1000, 1),
        "inclusion_proof_steps": len(proof),
        "verify_proof_us": round(verify_s * 1e6, 1),
        "record_body_bytes": len(json.dumps(built.body(), separators=(",", ":"))),
    }


def main() -> None:
    results: dict[str, Any] = {
        "benchmark": "credit ledger",
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "core": "compiled" if speedups.USING_EXTENSIONS else "pure",
    }
    where = sys.argv[1] if len(sys.argv) > 1 else None
    with tempfile.TemporaryDirectory(prefix="bench-ledger-", dir=where) as tmp:
        results["durable_appends"] = asyncio.run(_appends(Path(tmp)))
    results["verify_10k_chain"] = _verification()
    results["gossip"] = _gossip()
    results["checkpoint"] = _checkpoints()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
