"""Compiled core against its pure-Python twin, side by side in one run; prints JSON.

Run: ``make bench`` or ``.venv/bin/python tests/benchmarks/bench_core.py``.
Each figure is the best of several repeats (operations per second, higher is better);
``speedup`` is compiled over pure. Chain verification is also run on two threads at once
to show the compiled core releasing the GIL.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

REPEATS = 5


def _core(kind: str) -> dict[str, ModuleType]:
    names = ("canonical", "chain", "signing")
    return {n: importlib.import_module(f"edgecoder.speedups._{kind}.{n}") for n in names}


def _rate(fn: Callable[[], object], count: int) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(count):
            fn()
        best = min(best, time.perf_counter() - start)
    return count / best


def _chain_threads(core: dict[str, ModuleType], bodies: list[bytes], hashes: list[bytes]) -> float:
    chain = core["chain"]
    half = len(bodies) // 2

    def segment(lo: int, hi: int) -> int:
        prev = chain.GENESIS if lo == 0 else hashes[lo - 1]
        return int(chain.verify(prev, bodies[lo:hi], hashes[lo:hi]))

    with ThreadPoolExecutor(2) as pool:
        best = float("inf")
        for _ in range(REPEATS):
            start = time.perf_counter()
            results = list(pool.map(segment, (0, half), (half, len(bodies))))
            best = min(best, time.perf_counter() - start)
    assert results == [-1, -1]
    return len(bodies) / best


def _measure(core: dict[str, ModuleType]) -> dict[str, float]:
    canonical, chain, signing = core["canonical"], core["chain"], core["signing"]
    advert = {
        "node_id": "7reafb76yallwbcyhdc77trsxrulj2kw",
        "seq": 1234,
        "models": [
            {"name": f"model-{i}", "digest": "ab" * 32, "context": 32768, "params": 270_000_000}
            for i in range(8)
        ],
        "load": {"slots": 4, "queue": 2, "owner_busy": False},
        "addresses": ["http://192.0.2.10:4301", "http://[2001:db8::10]:4301"],
    }
    public, secret = signing.seed_keypair(bytes(range(32)))
    message = canonical.encode(advert)
    signature = signing.sign(secret, message)
    bodies = [
        canonical.encode({"seq": i, "amount": i * 7, "peer": "x" * 32}) for i in range(20_000)
    ]
    hashes, prev = [], chain.GENESIS
    for body in bodies:
        prev = chain.link(prev, body)
        hashes.append(prev)
    return {
        "canonical_encode_advert_per_s": _rate(lambda: canonical.encode(advert), 5_000),
        "ed25519_sign_per_s": _rate(lambda: signing.sign(secret, message), 2_000),
        "ed25519_verify_per_s": _rate(lambda: signing.verify(public, message, signature), 2_000),
        "chain_verify_links_per_s": _rate(lambda: chain.verify(chain.GENESIS, bodies, hashes), 3)
        * len(bodies),
        "chain_verify_links_per_s_2_threads": _chain_threads(core, bodies, hashes),
    }


def main() -> None:
    results: dict[str, Any] = {
        "benchmark": "core: compiled vs pure",
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    pure = _measure(_core("pure"))
    try:
        compiled = _measure(_core("compiled"))
    except ImportError as exc:
        results["compiled"] = f"unavailable: {exc}"
        results["pure"] = {k: round(v) for k, v in pure.items()}
    else:
        results["metrics"] = {
            name: {
                "pure": round(pure[name]),
                "compiled": round(compiled[name]),
                "speedup": round(compiled[name] / pure[name], 2),
            }
            for name in pure
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
