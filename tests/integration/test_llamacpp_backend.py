"""The embedded backend in-process with the real model: shutdown cancels running work;
embeddings run in batches, within a token budget, and stop when cancelled."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from edgecoder.adapters.backends import llamacpp
from edgecoder.adapters.backends.llamacpp import EMBED_BATCH, LlamaCppBackend
from edgecoder.errors import BadRequestError
from edgecoder.inference.types import ChatMessage, ChatRequest, EmbeddingRequest, SamplingParams
from edgecoder.storage.database import Database

pytestmark = [pytest.mark.model, pytest.mark.anyio]


async def test_close_cancels_a_running_generation(tmp_path: Path) -> None:
    database = await Database.open(tmp_path)
    backend = LlamaCppBackend(database, tmp_path, context_length=4096, threads=0, slots=1,
                              max_queue=1)  # fmt: skip
    try:
        await backend.start()
        request = ChatRequest(
            model="gemma3:270m",
            messages=(ChatMessage("user", "Tell a very long story."),),
            sampling=SamplingParams(max_tokens=2000, ignore_eos=True),
        )
        stream = backend.chat(request)
        received = 0
        async for delta in stream:
            received += bool(delta.text)
            if received == 3:
                break
        # Shutting down while the generation runs must stop its thread, not wait it out.
        await backend.close()
        usage = None
        async for delta in stream:
            usage = delta.usage or usage
        assert usage is not None
        assert usage.completion_tokens < 2000
    finally:
        await database.close()


async def test_embeddings_in_batches_budget_and_cancellation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = await Database.open(tmp_path)
    backend = LlamaCppBackend(database, tmp_path, context_length=2048, threads=0, slots=1,
                              max_queue=1)  # fmt: skip
    try:
        await backend.start()
        texts = tuple(f"def f{i}(): return {i}" for i in range(EMBED_BATCH + 3))
        batched = await backend.embed(EmbeddingRequest("gemma3:270m", texts))
        alone = await backend.embed(EmbeddingRequest("gemma3:270m", texts[-1:]))
        assert len(batched.vectors) == len(texts)
        assert batched.vectors[-1] == pytest.approx(alone.vectors[0], abs=1e-4)

        # Over the token budget: refused by measuring, before any embedding runs.
        monkeypatch.setattr(llamacpp, "MAX_EMBEDDING_TOKENS", batched.prompt_tokens - 1)
        with pytest.raises(BadRequestError, match="tokens in all"):
            await backend.embed(EmbeddingRequest("gemma3:270m", texts))
        monkeypatch.undo()

        # Cancelled (its client gone): stops at the next batch, not after every text.
        started = 0
        first = threading.Event()
        real_embed = llamacpp.runtime.embed

        def counting(model: Any, batch: Any) -> Any:
            nonlocal started
            started += 1
            first.set()
            return real_embed(model, batch)

        monkeypatch.setattr(llamacpp.runtime, "embed", counting)
        many = tuple(f"text {i}" for i in range(EMBED_BATCH * 20))
        task = asyncio.create_task(backend.embed(EmbeddingRequest("gemma3:270m", many)))
        assert await asyncio.to_thread(first.wait, 120)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert started < 20, "batches kept running after the request was cancelled"
    finally:
        await backend.close()
        await database.close()
