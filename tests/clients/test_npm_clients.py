"""Real npm clients against a node on a loopback socket: Continue's own client library
and CLI, the Vercel AI SDK and the ollama client, each as its users run it.

The backend is scripted (:func:`tests.clients.served.agent_turn`): asked with tools, it
calls one; given the result, it answers quoting it. So an answer that quotes the tool's
output proves the client ran the tool and sent the result back in a shape the node read.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from edgecoder.inference.types import ChatRequest, CompletionRequest
from tests.clients.served import Served
from tests.inprocess import MODEL

pytestmark = pytest.mark.clients


def run_node(npm_clients: Path, script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(["node", str(npm_clients / script), *args], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_continues_openai_adapters(npm_clients: Path, served: Served) -> None:
    # apiBase as users type it, without a trailing slash: Continue then posts its FIM
    # stream to /fim/completions, which the node serves too.
    out = run_node(npm_clients, "continue_adapters.mjs", f"{served.url}/v1", served.key, MODEL)
    reply = "Hello from the script."
    assert (out["chatStream"], out["chat"], out["completion"], out["fim"]) == (reply,) * 4
    assert out["embeddings"] == [[3.0, 1.0], [5.0, 1.0]]
    call = {"id": "call_get_weather", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert out["toolCalls"] == [call]
    fim = [r for r in served.backend.requests if isinstance(r, CompletionRequest) and r.suffix]
    assert fim[-1].suffix == "\n\nprint(add(1, 2))\n"


def test_continue_cli_completes_an_agent_turn_with_a_tool(
    npm_clients: Path, served: Served, tmp_path: Path
) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    (work / "notes.txt").write_text("The meeting is on Tuesday.\n")
    config = work / "config.yaml"
    config.write_text(
        "name: EdgeCoder\nversion: 1.0.0\nschema: v1\nmodels:\n"
        f"  - name: EdgeCoder\n    provider: openai\n    model: {MODEL}\n"
        f"    apiBase: {served.url}/v1\n    apiKey: {served.key}\n    roles: [chat, edit, apply]\n"
    )
    env = {**os.environ, "HOME": str(home), "NO_COLOR": "1"}
    done = subprocess.run(
        [str(npm_clients / "node_modules/.bin/cn"), "-p", "What does notes.txt say?",
         "--config", str(config)],
        cwd=work, env=env, capture_output=True, text=True, timeout=180,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "The meeting is on Tuesday." in done.stdout  # Read ran; its result came back
    turns = [r for r in served.backend.requests if isinstance(r, ChatRequest)]
    assert len(turns) == 2
    assert "Read" in [t.name for t in turns[0].tools]  # cn offers its ~9 tools every time
    assert [m.role for m in turns[1].messages][-2:] == ["assistant", "tool"]


def test_vercel_ai_sdk_generate_text_with_a_tool(npm_clients: Path, served: Served) -> None:
    out = run_node(npm_clients, "ai_sdk.mjs", f"{served.url}/v1", served.key, MODEL)
    assert out == {"text": "The tool said: sunny in Paris", "ran": ["Paris"], "steps": 2,
                   "finish": "stop"}  # fmt: skip


def test_ollama_npm_client_tools_and_errors(npm_clients: Path, served: Served) -> None:
    out = run_node(npm_clients, "ollama_npm.mjs", served.url, served.key, MODEL)
    assert out["arguments"] == {"city": "Paris"}  # an object, as Ollama's clients expect
    assert out["answer"] == "The tool said: sunny"
    assert out["error"] == "model 'no-such-model' not found"  # not "[object Object]"


def test_claude_code_completes_an_agent_turn_with_a_tool(
    npm_clients: Path, served: Served, tmp_path: Path
) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    (work / "notes.txt").write_text("The meeting is on Tuesday.\n")
    env = {
        **os.environ, "HOME": str(home), "ANTHROPIC_BASE_URL": served.url,
        "ANTHROPIC_API_KEY": served.key, "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }  # fmt: skip
    done = subprocess.run(
        [str(npm_clients / "node_modules/.bin/claude"), "-p", "What does notes.txt say?",
         "--model", MODEL, "--allowedTools", "Read"],
        cwd=work, env=env, capture_output=True, text=True, timeout=180,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    assert "The meeting is on Tuesday." in done.stdout  # Read ran; its result came back
    turns = [r for r in served.backend.requests if isinstance(r, ChatRequest)]
    assert "Read" in [t.name for t in turns[-1].tools]
    assert [m.role for m in turns[-1].messages][-2:] == ["assistant", "tool"]
    # Its billing line never reaches the model, so the prompt cache holds across turns.
    assert all("x-anthropic-billing-header" not in m.content for m in turns[-1].messages)
