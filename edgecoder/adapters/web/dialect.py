"""What every client API dialect provides: keys, errors, framing, parsing and answers.

A dialect is one object per API family (OpenAI's Chat Completions and Responses,
Anthropic's Messages, Ollama's) that says how its clients send their key, how an error
looks (status, body, headers) and how it is framed once a stream has begun, how its
streams are framed, how a chat body is read, and how the answer is rendered, whole or
streamed (an :class:`Answer`).
Routes are built with their dialect (:mod:`edgecoder.adapters.web.routing`), so nothing
looks at a path prefix or passes a boolean to choose a shape, and one chat handler serves
every dialect (:mod:`edgecoder.adapters.web.chat_api`).
"""

from __future__ import annotations

import abc
import contextlib
import math
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import ClassVar, Protocol

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, StreamingResponse

from edgecoder.adapters.web.errors import classify
from edgecoder.adapters.web.generation import Collected
from edgecoder.adapters.web.parsed import ParsedChat
from edgecoder.adapters.web.requests import Fields
from edgecoder.adapters.web.streams import Framing, heartbeat
from edgecoder.errors import EdgeCoderError, OverloadedError, RateLimitedError, StorageError
from edgecoder.inference.types import Delta

__all__ = ("Answer", "Dialect")


class Answer(Protocol):
    """One generation's answer in a dialect, with its ids and start time fixed when asked."""

    def body(self, done: Collected) -> object:
        """The whole answer's JSON body."""
        ...

    def frames(self, stream: AsyncIterator[Delta]) -> AsyncIterator[bytes]:
        """The streamed answer, framed; closing it closes ``stream``."""
        ...


class Dialect(abc.ABC):
    """One API family's conventions; subclasses give the shapes, this gives what they share.

    Shared: statuses and ``Retry-After`` from :func:`~edgecoder.adapters.web.errors.classify`,
    bearer keys, relaying a stream through the dialect's framing.
    """

    name: ClassVar[str]
    framing: ClassVar[Framing]
    stream_headers: ClassVar[Mapping[str, str]] = {}
    """Headers a streamed answer adds (OpenAI's ask proxies not to cache or buffer)."""
    server_timing: ClassVar[bool] = False
    """Whether whole chat answers carry ``Server-Timing`` (OpenAI's do; Ollama's never have)."""

    def key(self, headers: Headers) -> str | None:
        """The caller's API key: ``Authorization: Bearer <key>``."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    @abc.abstractmethod
    def error_body(self, exc: EdgeCoderError) -> object:
        """The JSON body of an error."""

    @abc.abstractmethod
    def internal_error(self, message: str) -> object:
        """The JSON body of a 500 whose cause the client must not see."""

    @abc.abstractmethod
    def stream_error(self, exc: EdgeCoderError) -> bytes:
        """An error after a stream began, framed as the stream's last event."""

    @abc.abstractmethod
    def parse_chat(self, fields: Fields) -> ParsedChat:
        """A chat body as an inference request.

        :raises BadRequestError: a field is missing or malformed; the error names it.
        """

    @abc.abstractmethod
    def chat_answer(self, parsed: ParsedChat) -> Answer:
        """The answer to ``parsed``, begun now (its id, creation time and clock)."""

    def status(self, exc: EdgeCoderError) -> int:
        """The HTTP status of an error (the shared mapping, unless the dialect differs)."""
        return classify(exc)[0]

    def error_response(self, exc: EdgeCoderError) -> JSONResponse:
        """The whole HTTP answer to an error: status, body and headers."""
        status = self.status(exc)
        headers = {}
        if isinstance(exc, RateLimitedError):
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        elif isinstance(exc, OverloadedError):
            headers["Retry-After"] = "1"
        elif isinstance(exc, StorageError):
            headers["Retry-After"] = "5"
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="edgecoder"'
        return JSONResponse(self.error_body(exc), status_code=status, headers=headers)

    async def relay(
        self, stream: AsyncIterator[Delta], frame: Callable[[Delta], Iterable[bytes]]
    ) -> AsyncIterator[bytes]:
        """Each delta of ``stream`` framed by ``frame``, then the framing's end.

        An error after the stream began becomes the dialect's last event
        (:meth:`stream_error`); closing this iterator closes ``stream``.
        """
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            try:
                async for delta in stream:
                    for chunk in frame(delta):
                        yield chunk
            except EdgeCoderError as exc:
                yield self.stream_error(exc)
        if self.framing.end:
            yield self.framing.end

    def streaming(
        self, frames: AsyncIterator[bytes], headers: Mapping[str, str], keepalive_s: float
    ) -> StreamingResponse:
        """A streamed answer of ``frames``, with keep-alives if the framing has them."""
        if self.framing.keepalive is not None:
            frames = heartbeat(frames, keepalive_s, self.framing.keepalive)
        return StreamingResponse(
            frames,
            media_type=self.framing.media_type,
            headers={**headers, **self.stream_headers},
        )
