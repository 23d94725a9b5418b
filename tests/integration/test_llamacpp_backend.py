"""The embedded backend in-process with the real model: shutdown cancels running work."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecoder.adapters.backends.llamacpp import LlamaCppBackend
from edgecoder.inference.types import ChatMessage, ChatRequest, SamplingParams
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
