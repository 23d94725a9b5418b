"""Framing streamed responses: OpenAI's SSE and Ollama's NDJSON, with keep-alives.

A :class:`Framing` is one stream format: its media type, how one event is framed, what
ends the stream (OpenAI's ``data: [DONE]``) and what fills a silence. Each dialect
(:mod:`edgecoder.adapters.web.dialect`) holds one.

While a model is still reading a long prompt nothing is produced for a while; proxies
and clients time out idle connections, so an SSE comment (``: keep-alive``) goes out
after every ``keepalive_s`` of silence. NDJSON has no comments, so Ollama streams rely on
TCP keep-alive as Ollama's own server does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

__all__ = (
    "KEEPALIVE",
    "NDJSON",
    "SSE",
    "SSE_DONE",
    "Framing",
    "dumps",
    "heartbeat",
    "ndjson",
    "sse",
)

KEEPALIVE = b": keep-alive\n\n"
SSE_DONE = b"data: [DONE]\n\n"


def dumps(obj: object) -> bytes:
    """``obj`` as compact UTF-8 JSON, the form every streamed event carries."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sse(event: object) -> bytes:
    """One SSE ``data:`` event carrying ``event`` as compact JSON."""
    return b"data: " + dumps(event) + b"\n\n"


def ndjson(event: object) -> bytes:
    """One NDJSON line."""
    return dumps(event) + b"\n"


@dataclass(frozen=True, slots=True)
class Framing:
    """A stream format: media type, one event's frame, the end marker, the keep-alive."""

    media_type: str
    event: Callable[[object], bytes]
    end: bytes = b""
    """Sent after the last event (an error event included); empty: nothing."""
    keepalive: bytes | None = None
    """Sent after each silence of ``keepalive_s``; None: the format has no comments."""


SSE = Framing("text/event-stream", sse, SSE_DONE, KEEPALIVE)
"""OpenAI's: ``data: {json}`` events, then ``data: [DONE]``, with ``: keep-alive`` comments."""

NDJSON = Framing("application/x-ndjson", ndjson)
"""Ollama's: one JSON object per line, nothing after the last."""


async def heartbeat(
    source: AsyncIterator[bytes], interval_s: float, beat: bytes = KEEPALIVE
) -> AsyncIterator[bytes]:
    """Relay ``source``, inserting ``beat`` after every ``interval_s`` without output.

    Closing this iterator closes ``source`` (and so cancels the generation behind it).
    """
    pending: asyncio.Task[bytes] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(source))
            done, _ = await asyncio.wait({pending}, timeout=interval_s)
            if not done:
                yield beat
                continue
            task, pending = pending, None
            try:
                chunk = task.result()
            except StopAsyncIteration:
                return
            yield chunk
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
