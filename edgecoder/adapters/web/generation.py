"""Running a generation for an HTTP request: admission, collection, and client disconnects.

Both API dialects use these: a stream is first *admitted* (every refusal surfaces before
any byte is sent, so it gets its proper status), then either collected into one response
or relayed chunk by chunk. A client that goes away cancels the generation either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TypeVar

from starlette.requests import Request

from edgecoder.inference.types import (
    ChatRequest,
    CompletionRequest,
    Delta,
    FinishReason,
    ToolCall,
    Usage,
)

__all__ = ("Collected", "admit", "capped", "collect", "server_timing", "unless_disconnected")

T = TypeVar("T")
R = TypeVar("R", ChatRequest, CompletionRequest)


def capped(request: R, default_max_tokens: int) -> R:
    """``request`` with ``max_tokens`` set to ``default_max_tokens`` when it asked for none.

    Without a cap a base model can run to the end of its context and hold its slot for
    minutes (aider asks without ``max_tokens``); 0 means no cap.
    """
    if request.sampling.max_tokens is not None or default_max_tokens <= 0:
        return request
    sampling = dataclasses.replace(request.sampling, max_tokens=default_max_tokens)
    return dataclasses.replace(request, sampling=sampling)


async def admit(stream: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
    """Wait for the stream's admission marker; return the stream, positioned after it.

    :raises InferenceError: the request was refused (the stream is closed).
    """
    try:
        await anext(stream)
    except BaseException:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
        raise
    return stream


@dataclass(frozen=True, slots=True)
class Collected:
    """A whole generation."""

    text: str
    finish_reason: FinishReason
    usage: Usage
    tool_calls: tuple[ToolCall, ...]
    stop_sequence: str = ""


def server_timing(request: Request, backend_s: float) -> str:
    """A ``Server-Timing`` value: time in the backend, and in the node since arrival.

    ``node - backend`` is what the API layer adds (auth, parsing, framing), measured
    inside the process, free of network and client noise.
    """
    arrived = getattr(request.state, "arrived", None)
    node_s = time.perf_counter() - arrived if arrived is not None else backend_s
    return f"backend;dur={backend_s * 1000:.3f}, node;dur={node_s * 1000:.3f}"


async def _gather(stream: AsyncIterator[Delta]) -> Collected:
    parts: list[str] = []
    finish: FinishReason = "stop"
    usage = Usage(0, 0)
    calls: tuple[ToolCall, ...] = ()
    stop = ""
    async with contextlib.aclosing(stream):  # type: ignore[type-var]
        async for delta in stream:
            parts.append(delta.text)
            if delta.finish_reason is not None:
                finish, stop = delta.finish_reason, delta.stop_sequence
            if delta.usage is not None:
                usage = delta.usage
            calls += delta.tool_calls
    return Collected("".join(parts), finish, usage, calls, stop)


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T | None:
    """Await ``work``, or cancel it and return None as soon as the client disconnects.

    The body must already have been read, so the only message left to receive is the
    client's disconnect. Work that nobody will read (an embedding of ten thousand texts,
    say) stops at its next await instead of holding the backend.
    """
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(task, watch, return_exceptions=True)
    if task.cancelled():
        return None
    return task.result()


async def collect(request: Request, stream: AsyncIterator[Delta]) -> Collected | None:
    """Run an admitted stream to its end; None if the client disconnected first."""
    return await unless_disconnected(request, _gather(stream))
