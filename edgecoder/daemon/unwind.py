"""One exit stack for the node's start and stop: every clean-up step runs, whatever fails.

Each part of the node, as it is made, pushes the step that undoes it; stopping (or a
start that fails half way) pops them in reverse order. A step that fails is logged on
one line, with what it means for the next start, and the rest still run; the first
failure is kept for the caller to raise once everything is done, as an
:class:`~edgecoder.errors.EdgeCoderError` the CLI prints on one line.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from edgecoder.errors import EdgeCoderError

__all__ = ("Unwind",)

log = logging.getLogger("edgecoder.daemon")

Step = Callable[[], Awaitable[object]]


class Unwind:
    """An async exit stack of named steps that collects, rather than raises, failures."""

    def __init__(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self.failure: EdgeCoderError | None = None
        """The first step that failed, once unwound (None: all went well)."""

    def push(self, what: str, step: Step, consequence: str = "") -> None:
        """Run ``step`` when unwinding (after every step pushed later).

        ``what`` names it in the log (``closing the database``); ``consequence`` says what
        its failure means (``; the next start ...``).
        """

        async def run() -> None:
            try:
                await step()
            except Exception as exc:
                log.error("stop: %s failed: %s%s", what, exc, consequence)
                if self.failure is None:
                    if isinstance(exc, EdgeCoderError):
                        self.failure = exc
                    else:
                        self.failure = EdgeCoderError(f"stop: {what} failed: {exc!r}")
                        self.failure.__cause__ = exc

        self._stack.push_async_callback(run)

    async def aclose(self) -> EdgeCoderError | None:
        """Run every step, newest first.

        :returns: the first failure, or None.
        :raises BaseException: a cancellation or interrupt, once every step has run.
        """
        await self._stack.aclose()
        return self.failure

    async def __aenter__(self) -> Unwind:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
