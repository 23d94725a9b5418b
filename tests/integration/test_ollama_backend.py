"""The Ollama backend against a real Ollama-API server: another node's ``/api`` routes.

Node A serves the embedded Gemma model; node B runs the ``ollama`` backend (through the
official ``ollama`` AsyncClient) pointed at A's Ollama-compatible API. A client of B sees
A's model through B's OpenAI and Ollama APIs.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.integration.agent_process import AgentProcess, edgecoder
from tests.integration.nodes import ModelNode

pytestmark = [pytest.mark.integration, pytest.mark.model]

MODEL = "gemma3:270m"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelNode]:
    node = ModelNode(tmp_path_factory.mktemp("upstream"), "[inference]\ncontext_length = 1024\n")
    yield node
    node.stop()


def _proxy(upstream: ModelNode, workdir: object, backend: str) -> tuple[AgentProcess, str]:
    from pathlib import Path

    agent = AgentProcess(Path(str(workdir)), "--backend", backend)
    agent.env["EDGECODER_INFERENCE_OLLAMA_URL"] = f"{upstream.url}/k/{upstream.key}"
    key = edgecoder("keys", "create", "bob", "--data-dir", str(agent.data_dir), env=agent.env)
    assert key.returncode == 0, key.stderr
    agent.start()
    return agent, key.stdout.strip()


def test_auto_prefers_a_reachable_ollama(upstream: ModelNode, tmp_path: object) -> None:
    agent, _ = _proxy(upstream, tmp_path, "auto")
    try:
        _, health = agent.get(f"{agent.api_url}/healthz")
        assert health["backend"]["active"] == "ollama"
        assert health["backend"]["reason"].startswith("Ollama answered at")
    finally:
        assert agent.stop()[0] == 0


def test_openai_and_ollama_apis_over_the_ollama_backend(
    upstream: ModelNode, tmp_path: object
) -> None:
    agent, key = _proxy(upstream, tmp_path, "ollama")
    try:
        with openai.OpenAI(base_url=f"{agent.api_url}/v1", api_key=key, max_retries=0) as client:
            models = {m.id: m for m in client.models.list()}
            assert models[MODEL].model_extra["context_length"] == 1024  # type: ignore[index]
            chunks = list(
                client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": "Hello"}],
                    stream=True,
                    stream_options={"include_usage": True},
                    max_tokens=6,
                    extra_body={"ignore_eos": True},
                )
            )
            assert chunks[0].choices[0].delta.role == "assistant"
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert chunks[-1].usage is not None
            assert chunks[-1].usage.completion_tokens <= 6
            assert chunks[-1].usage.prompt_tokens > 0
            embedded = client.embeddings.create(model=MODEL, input="hi")
            assert len(embedded.data[0].embedding) == 640
            with pytest.raises(openai.NotFoundError):
                client.chat.completions.create(
                    model="missing:1b", messages=[{"role": "user", "content": "hi"}]
                )
            # The prompt cannot fit 1024 tokens: refused here, never cut by Ollama.
            with pytest.raises(openai.BadRequestError, match="context"):
                client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "token " * 3000}]
                )
        headers = {"Authorization": f"Bearer {key}"}
        shown = httpx.post(f"{agent.api_url}/api/show", json={"model": MODEL}, headers=headers)
        assert shown.json()["model_info"]["gemma3.context_length"] == 1024
        generated = httpx.post(
            f"{agent.api_url}/api/generate",
            json={"model": MODEL, "prompt": "1, 2, 3,", "raw": True, "stream": False,
                  "options": {"num_predict": 4}},
            headers=headers,
            timeout=60,
        )  # fmt: skip
        assert generated.status_code == 200, generated.text
        assert generated.json()["done"] is True
        ps = httpx.get(f"{agent.api_url}/api/ps", headers=headers).json()
        assert [m["name"] for m in ps["models"]] == [MODEL]
    finally:
        assert agent.stop()[0] == 0
