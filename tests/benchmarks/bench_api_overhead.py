"""What the node's HTTP API adds over its backend; prints JSON.

Run: ``make bench`` or ``.venv/bin/python tests/benchmarks/bench_api_overhead.py [N]``.

Side by side in one run, on the same machine, the same Gemma 270M model and the same
small request (short prompt, 8 tokens, fixed seed so every run does identical work):

* ``direct``: the embedded backend called in-process (no HTTP at all);
* ``node``: the same request through a running ``edgecoder agent`` over loopback HTTP,
  with API-key auth, JSON parsing and SSE framing (streamed) or one JSON body (not).

Requests alternate between the two paths so drift hits both alike, with a pause before
each so one process's spinning worker threads do not slow the other's request. Reported: p50/p99 of
time to first token (streamed) and total time (streamed and not), and the node's added
p50 = node - direct. That difference crosses two processes and carries the model's own
run-to-run noise (a few ms), so the node also reports, in a ``Server-Timing`` header, the
time it spent outside the backend for each non-streamed request: ``in_node_api_layer``
(auth, body parsing, admission, response encoding), measured inside the process.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.integration.agent_process import AgentProcess, edgecoder

MODEL = "gemma3:270m"
PROMPT = "Write one line of Python."
MAX_TOKENS = 8
SEED = 1234
SETTLE_S = 0.2
"""Pause before each request: llama.cpp's worker threads spin for a while after a request,
and would otherwise steal CPU from the other path's next request."""


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values) * 1000, 3),
        "p99_ms": round(_pct(values, 0.99) * 1000, 3),
    }


async def _direct(data_dir: Path, n: int, results: dict[str, list[float]]) -> Any:
    from edgecoder.adapters.backends.llamacpp import LlamaCppBackend
    from edgecoder.inference.types import ChatMessage, ChatRequest, SamplingParams
    from edgecoder.storage.database import Database

    database = await Database.open(data_dir)
    backend = LlamaCppBackend(database, data_dir, context_length=8192, threads=0, slots=1,
                              max_queue=4)  # fmt: skip
    await backend.start()
    request = ChatRequest(
        model=MODEL,
        messages=(ChatMessage("user", PROMPT),),
        sampling=SamplingParams(max_tokens=MAX_TOKENS, seed=SEED, temperature=0.0),
    )

    async def once(stream: bool) -> None:
        start = time.perf_counter()
        first = None
        async for delta in backend.chat(request):
            if delta.text and first is None:
                first = time.perf_counter() - start
        total = time.perf_counter() - start
        if stream:
            results["direct_stream_ttft"].append(first or total)
            results["direct_stream_total"].append(total)
        else:
            results["direct_total"].append(total)

    return backend, database, once


def _node_once(client: httpx.Client, stream: bool, results: dict[str, list[float]]) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": MAX_TOKENS, "seed": SEED, "temperature": 0, "stream": stream}  # fmt: skip
    start = time.perf_counter()
    if not stream:
        response = client.post("/v1/chat/completions", json=body)
        response.raise_for_status()
        results["node_total"].append(time.perf_counter() - start)
        timing = dict(
            (part.split(";dur=")[0].strip(), float(part.split(";dur=")[1]) / 1000)
            for part in response.headers["server-timing"].split(",")
        )
        results["in_node_api_layer"].append(timing["node"] - timing["backend"])
        return
    first = None
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if first is None and '"content":"' in line and '"content":""' not in line:
                first = time.perf_counter() - start
    total = time.perf_counter() - start
    results["node_stream_ttft"].append(first or total)
    results["node_stream_total"].append(total)


async def main(n: int) -> dict[str, Any]:
    results: dict[str, list[float]] = {
        k: []
        for k in ("direct_stream_ttft", "direct_stream_total", "direct_total",
                  "node_stream_ttft", "node_stream_total", "node_total", "in_node_api_layer")
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "node").mkdir()
        agent = AgentProcess(workdir / "node", "--backend", "llamacpp")
        key = edgecoder("keys", "create", "bench", "--data-dir", str(agent.data_dir),
                        env=agent.env).stdout.strip()  # fmt: skip
        agent.start()
        (workdir / "direct").mkdir(mode=0o700)
        backend, database, direct_once = await _direct(workdir / "direct", n, results)
        try:
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=agent.api_url, headers=headers, timeout=60) as client:
                for warm in (True, False):
                    await direct_once(warm)
                    await asyncio.to_thread(_node_once, client, warm, {k: [] for k in results})
                for stream in [True, False] * n:
                    await asyncio.sleep(SETTLE_S)
                    await direct_once(stream)
                for stream in [True, False] * n:
                    await asyncio.sleep(SETTLE_S)
                    await asyncio.to_thread(_node_once, client, stream, results)
        finally:
            await backend.close()
            await database.close()
            agent.stop()
    summary = {name: _summary(values) for name, values in results.items()}
    added = {
        "stream_ttft_p50_ms": round(summary["node_stream_ttft"]["p50_ms"]
                                    - summary["direct_stream_ttft"]["p50_ms"], 3),
        "stream_total_p50_ms": round(summary["node_stream_total"]["p50_ms"]
                                     - summary["direct_stream_total"]["p50_ms"], 3),
        "nonstream_total_p50_ms": round(summary["node_total"]["p50_ms"]
                                        - summary["direct_total"]["p50_ms"], 3),
    }  # fmt: skip
    return {
        "benchmark": "client API overhead: node over loopback HTTP vs backend in-process",
        "requests_per_path": n,
        "context_length": 8192,
        "request": {"model": MODEL, "max_tokens": MAX_TOKENS, "prompt_chars": len(PROMPT)},
        "results": summary,
        "node_added": added,
    }


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    import uvloop

    report = uvloop.run(main(count))
    git = ["git", "rev-parse", "--short", "HEAD"]
    report["git"] = subprocess.run(git, capture_output=True, text=True, check=False).stdout.strip()
    print(json.dumps(report, indent=2))
