"""Real PyPI clients against a node on a loopback socket: LiteLLM, LangChain, ``llm`` and
aider, each in its own environment (their pins differ from the project's).

The backend is scripted (:func:`tests.clients.served.agent_turn`, or an edit for aider),
so each client's requests and parsing are what is tested, not a model's skill.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from edgecoder.inference.types import ChatRequest, Delta, EmbeddingRequest, Usage
from tests.clients.conftest import PYPI_DIR
from tests.clients.served import Served
from tests.inprocess import MODEL

pytestmark = pytest.mark.clients

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
QUIET = {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # no fetch of LiteLLM's price list


def run_python(venv: Path, script: str, served: Served, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [str(venv / "bin/python"), str(PYPI_DIR / script), served.url, served.key, MODEL],
        capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, **QUIET, **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_litellm_openai_and_ollama_providers(clients_venv: Path, served: Served) -> None:
    out = run_python(clients_venv, "litellm_client.py", served, {})
    reply = "Hello from the script."
    assert (out["openai"], out["openai_stream"], out["ollama"]) == (reply, reply, reply)
    assert out["openai_call"] == ["get_weather", {"city": "Paris"}]
    assert out["ollama_chat_call"] == ["get_weather", {"city": "Paris"}]


def test_langchain_chat_models_and_embeddings_with_defaults(
    clients_venv: Path, served: Served, tmp_path: Path
) -> None:
    # OpenAIEmbeddings tokenizes with tiktoken, which downloads cl100k_base on first use;
    # this machine has no internet, so its cache gets the same file (same SHA-256) from
    # the bpe-openai package, as a developer's machine would have it after one download.
    spec = importlib.util.find_spec("bpe_openai")
    assert spec is not None
    assert spec.submodule_search_locations is not None
    package = Path(spec.submodule_search_locations[0])
    cache = tmp_path / "tiktoken"
    cache.mkdir()
    vocabulary = gzip.decompress((package / "data/cl100k_base.tiktoken.gz").read_bytes())
    (cache / hashlib.sha1(CL100K_URL.encode()).hexdigest()).write_bytes(vocabulary)  # noqa: S324
    out = run_python(
        clients_venv, "langchain_client.py", served, {"TIKTOKEN_CACHE_DIR": str(cache)}
    )
    assert out["chat_openai"] == out["chat_ollama"] == "Hello from the script."
    assert out["chat_openai_calls"] == [["get_weather", {"city": "Paris"}]]
    assert out["chat_ollama_calls"] == [["get_weather", {"city": "Paris"}]]
    assert out["embeddings"] == [[11.0, 1.0], [13.0, 1.0]]  # lengths of the decoded texts
    embedded = [r for r in served.backend.requests if isinstance(r, EmbeddingRequest)]
    assert embedded[-1].inputs == ("hello world", "def f(): pass")  # sent as token ids


def test_llm_chat_completion_and_responses_models(
    clients_venv: Path, served: Served, tmp_path: Path
) -> None:
    user = tmp_path / "llm"
    user.mkdir()
    template = (PYPI_DIR / "llm_models.yaml.in").read_text()
    (user / "extra-openai-models.yaml").write_text(
        template.replace("{base}", served.url).replace("{model}", MODEL)
    )
    (user / "keys.json").write_text(json.dumps({"edgecoder": served.key}))
    weather = (
        'def get_weather(city: str) -> str:\n    "The weather."\n    return "sunny in " + city\n'
    )
    runs = {
        "chat": ["-m", "edge-chat", "Hi"],
        "chat_whole": ["-m", "edge-chat", "--no-stream", "Hi"],
        "completion": ["-m", "edge-completion", "def f("],
        "responses": ["-m", "edge-responses", "Hi"],
        "responses_whole": ["-m", "edge-responses", "--no-stream", "Hi"],
        "chat_tool": ["-m", "edge-chat", "--functions", weather, "Weather in Paris?"],
        "responses_tool": ["-m", "edge-responses", "--functions", weather, "Weather in Paris?"],
    }
    out = {}
    for name, args in runs.items():
        done = subprocess.run([str(clients_venv / "bin/llm"), *args], capture_output=True,
                              text=True, timeout=120, check=False,
                              env={**os.environ, "LLM_USER_PATH": str(user)})  # fmt: skip
        assert done.returncode == 0, (name, done.stderr[-2000:])
        out[name] = done.stdout.strip()
    for name in ("chat", "chat_whole", "completion", "responses", "responses_whole"):
        assert out[name] == "Hello from the script.", name
    assert out["chat_tool"] == out["responses_tool"] == "The tool said: sunny in Paris"


def test_aider_completes_a_one_file_edit(aider_venv: Path, served: Served, tmp_path: Path) -> None:
    new = 'def greet():\n    return "hello, world"\n'

    def edit(request: ChatRequest) -> tuple[Delta, ...]:
        # aider's "whole" edit format: the file name, then the whole new file.
        reply = f"hello.py\n```python\n{new}```\n"
        return (Delta(text=reply), Delta(finish_reason="stop", usage=Usage(10, 12)))

    served.backend.script = edit
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    (work / "hello.py").write_text('def greet():\n    return "hi"\n')
    done = subprocess.run(
        [str(aider_venv / "bin/aider"), "--model", f"openai/{MODEL}",
         "--openai-api-base", f"{served.url}/v1", "--openai-api-key", served.key,
         "--message", "Make greet return hello, world", "--yes-always", "--no-git",
         "--edit-format", "whole", "--no-show-model-warnings", "--no-check-update",
         "--no-analytics", "--no-pretty", "hello.py"],
        cwd=work, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        check=False, env={**os.environ, **QUIET, "HOME": str(home)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Applied edit to hello.py" in done.stdout
    assert (work / "hello.py").read_text() == new
    asked = [r for r in served.backend.requests if isinstance(r, ChatRequest)]
    assert asked[-1].sampling.max_tokens == 2048  # aider names no limit: the default cap
