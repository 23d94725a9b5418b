"""Load one node can hold: concurrent streamed chats on the real model; prints JSON.

Run: ``.venv/bin/python tests/benchmarks/bench_concurrent_streams.py [LEVELS...]``
(default 1 4 16 32). One agent on the embedded backend with the Gemma 270M model and its
default admission (``inference.slots`` 1, ``inference.max_queue`` 16). At each level, that
many clients each stream one chat of 16 tokens at once; reported per level: how many
completed and how many were shed (``503`` with ``Retry-After``, never a hang or a 500),
time to first token at the client (p50, p99), wall time and output tokens/s, and
``/healthz`` latency measured while the streams run (p50, p99: the loop stays responsive).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.integration.nodes import ModelNode

MODEL = "gemma3:270m"
TOKENS = 16


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


async def _stream(client: httpx.AsyncClient, key: str, index: int) -> dict[str, Any]:
    prompt = f"Count to ten, attempt {index}."
    body = {"model": MODEL, "stream": True, "max_tokens": TOKENS, "ignore_eos": True,
            "messages": [{"role": "user", "content": prompt}]}  # fmt: skip
    started = time.perf_counter()
    first = None
    async with client.stream("POST", "/v1/chat/completions", json=body,
                             headers={"Authorization": f"Bearer {key}"}) as response:  # fmt: skip
        if response.status_code != 200:
            await response.aread()
            return {"status": response.status_code,
                    "retry_after": response.headers.get("retry-after")}  # fmt: skip
        async for line in response.aiter_lines():
            # The first chunk carries the role and empty content: wait for real text.
            if first is None and '"content":"' in line and '"content":""' not in line:
                first = time.perf_counter()
    ttft = None if first is None else (first - started) * 1000
    return {"status": 200, "ttft_ms": ttft}


async def _health(client: httpx.AsyncClient, stop: asyncio.Event) -> list[float]:
    samples = []
    while not stop.is_set():
        started = time.perf_counter()
        response = await client.get("/healthz")
        assert response.status_code == 200
        samples.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.05)
    return samples


async def level(url: str, key: str, n: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=n + 4)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        stop = asyncio.Event()
        health = asyncio.create_task(_health(client, stop))
        started = time.perf_counter()
        results = await asyncio.gather(*(_stream(client, key, i) for i in range(n)))
        wall = time.perf_counter() - started
        stop.set()
        latencies = await health
    done = [r for r in results if r["status"] == 200]
    shed = [r for r in results if r["status"] == 503]
    other = [r["status"] for r in results if r["status"] not in {200, 503}]
    ttfts = [r["ttft_ms"] for r in done if r["ttft_ms"] is not None]
    return {
        "concurrent": n,
        "completed": len(done),
        "shed_503": len(shed),
        "shed_with_retry_after": sum(1 for r in shed if r["retry_after"]),
        "other_statuses": other,
        "ttft_ms_p50": _percentile(ttfts, 0.5),
        "ttft_ms_p99": _percentile(ttfts, 0.99),
        "wall_s": round(wall, 2),
        "output_tokens_per_s": round(len(done) * TOKENS / wall, 1),
        "healthz_ms_p50": _percentile(latencies, 0.5),
        "healthz_ms_p99": _percentile(latencies, 0.99),
        "healthz_median_of_run_ms": round(statistics.median(latencies), 1) if latencies else None,
    }


def main() -> None:
    levels = [int(a) for a in sys.argv[1:]] or [1, 4, 16, 32]
    with tempfile.TemporaryDirectory(prefix="edgecoder-bench-") as work:
        config = "[api]\nrate_limit_per_min = 60000\nrate_limit_burst = 1000\n"
        node = ModelNode(Path(work), config)
        try:
            rows = [asyncio.run(level(node.url, node.key, n)) for n in levels]
        finally:
            node.stop()
    print(json.dumps({"benchmark": "concurrent_streams", "model": MODEL,
                      "tokens_per_stream": TOKENS, "levels": rows}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
