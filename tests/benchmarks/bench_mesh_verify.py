"""Mesh request verification against the raw libsodium verify rate; prints JSON.

Run: ``make bench`` or ``.venv/bin/python tests/benchmarks/bench_mesh_verify.py``.

In one run, on one core:

* ``raw_verify_per_s``: ``crypto_sign_verify_detached`` in a C loop (a tiny Cython harness
  this program compiles) over the same distinct requests' signing strings, keys and
  signatures: the ceiling for anything that verifies one signature per request;
* ``pipeline_per_s``: distinct signed requests through the whole receiving check
  (:class:`RequestVerifier.check`: header shape, skew, blacklist, two token buckets,
  replay cache, key binding, body hash, signature), compiled and pure;
* signed-chain verification (link hashes plus an Ed25519 signature per entry), entries/s
  on one thread and on two threads each verifying half of the chain.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

REQUESTS = 20_000
CHAIN = 20_000
REPEATS = 3
HARNESS = """
# distutils: libraries = sodium
cdef extern from "sodium.h" nogil:
    int sodium_init()
    int crypto_sign_verify_detached(const unsigned char *sig, const unsigned char *m,
                                    unsigned long long mlen, const unsigned char *pk)

sodium_init()

from cpython.mem cimport PyMem_Free, PyMem_Malloc

def verify_all(list keys, list messages, list sigs):
    cdef Py_ssize_t n = len(keys), i
    cdef const unsigned char **k = <const unsigned char **>PyMem_Malloc(n * sizeof(void *))
    cdef const unsigned char **m = <const unsigned char **>PyMem_Malloc(n * sizeof(void *))
    cdef const unsigned char **s = <const unsigned char **>PyMem_Malloc(n * sizeof(void *))
    cdef unsigned long long *length = <unsigned long long *>PyMem_Malloc(n * 8)
    cdef long ok = 0
    for i in range(n):
        k[i] = <bytes>keys[i]
        m[i] = <bytes>messages[i]
        s[i] = <bytes>sigs[i]
        length[i] = len(<bytes>messages[i])
    with nogil:
        for i in range(n):
            ok += crypto_sign_verify_detached(s[i], m[i], length[i], k[i]) == 0
    PyMem_Free(k)
    PyMem_Free(m)
    PyMem_Free(s)
    PyMem_Free(length)
    return ok
"""


def _harness(workdir: Path) -> Any:
    source = workdir / "rawverify.pyx"
    source.write_text(HARNESS)
    cythonize = Path(sys.executable).parent / "cythonize"
    subprocess.run([str(cythonize), "-i", "-3", "-q", str(source)], cwd=workdir, check=True,
                   capture_output=True)  # fmt: skip
    sys.path.insert(0, str(workdir))
    return importlib.import_module("rawverify")


def _core(kind: str) -> dict[str, ModuleType]:
    names = ("chain", "envelope", "signing")
    return {n: importlib.import_module(f"edgecoder.speedups._{kind}.{n}") for n in names}


def _requests(core: dict[str, ModuleType], recipient: str, now: int) -> list[tuple[Any, ...]]:
    envelope, signing = core["envelope"], core["signing"]
    senders = [signing.seed_keypair(bytes([i]) * 32) for i in range(8)]
    out = []
    for i in range(REQUESTS):
        public, secret = senders[i % len(senders)]
        body = b'{"ping":%d}' % i
        h = envelope.sign_request(secret, public, "POST", "/mesh/ping", recipient, body, now)
        out.append(("POST", "/mesh/ping", h["x-ec-sender"], h["x-ec-key"], h["x-ec-timestamp"],
                    h["x-ec-nonce"], h["x-ec-body-sha256"], h["x-ec-recipient"],
                    h["x-ec-signature"], body, f"10.0.0.{i % 8}", now))  # fmt: skip
    return out


def _pipeline_rate(core: dict[str, ModuleType], requests: list[tuple[Any, ...]], own: str) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        verifier = core["envelope"].RequestVerifier(
            own, skew_ms=30_000, max_body=1 << 20, sender_rate=1e9, sender_burst=1e9,
            address_rate=1e9, address_burst=1e9, replay_capacity=REQUESTS * 2,
        )  # fmt: skip
        check = verifier.check
        start = time.perf_counter()
        for request in requests:
            if check(*request):
                raise AssertionError("a genuine request was refused")
        best = min(best, time.perf_counter() - start)
    return len(requests) / best


def _chain_rates(core: dict[str, ModuleType]) -> dict[str, float]:
    chain, signing = core["chain"], core["signing"]
    public, secret = signing.seed_keypair(bytes(range(32)))
    bodies = [b'{"seq":%d,"amount":7}' % i for i in range(CHAIN)]
    hashes, prev = [], chain.GENESIS
    for body in bodies:
        prev = chain.link(prev, body)
        hashes.append(prev)
    sigs = [chain.sign_link(secret, h) for h in hashes]
    half = CHAIN // 2

    def segment(lo: int, hi: int) -> int:
        start = chain.GENESIS if lo == 0 else hashes[lo - 1]
        return int(chain.verify_signed(start, bodies[lo:hi], hashes[lo:hi], sigs[lo:hi], public))

    def timed(fn: Any) -> float:
        best = float("inf")
        for _ in range(REPEATS):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        return CHAIN / best

    with ThreadPoolExecutor(2) as pool:
        one = timed(lambda: segment(0, CHAIN))
        two = timed(lambda: list(pool.map(segment, (0, half), (half, CHAIN))))
    return {"one_thread": one, "two_threads": two}


def main() -> dict[str, Any]:
    from edgecoder.security.identity import NodeIdentity

    own = NodeIdentity(bytes(range(32, 64))).node_id
    now = int(time.time() * 1000)
    results: dict[str, Any] = {"benchmark": "mesh verification vs raw libsodium verify",
                               "cpus": os.cpu_count(), "requests": REQUESTS}  # fmt: skip
    pure = _core("pure")
    requests = _requests(pure, own, now)
    # The ceiling: the same distinct requests' signatures, verified in a C loop.
    keys = [bytes.fromhex(r[3]) for r in requests]
    sigs = [bytes.fromhex(r[8]) for r in requests]
    messages = [pure["envelope"].signing_bytes(r[0], r[1], r[2], r[7], int(r[4]), r[5], r[6])
                for r in requests]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        raw = _harness(Path(tmp))
        best = float("inf")
        for _ in range(REPEATS):
            start = time.perf_counter()
            assert raw.verify_all(keys, messages, sigs) == REQUESTS
            best = min(best, time.perf_counter() - start)
        raw_rate = REQUESTS / best
    results["raw_verify_per_s"] = round(raw_rate)
    for kind in ("compiled", "pure"):
        try:
            core = _core(kind)
        except ImportError as exc:
            results[kind] = f"unavailable: {exc}"
            continue
        rate = _pipeline_rate(core, requests, own)
        chain = _chain_rates(core)
        results[kind] = {
            "pipeline_per_s": round(rate),
            "pipeline_vs_raw": round(rate / raw_rate, 3),
            "signed_chain_entries_per_s_1_thread": round(chain["one_thread"]),
            "signed_chain_entries_per_s_2_threads": round(chain["two_threads"]),
            "signed_chain_2_vs_1_thread": round(chain["two_threads"] / chain["one_thread"], 2),
        }
    return results


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
