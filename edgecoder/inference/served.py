"""A generation stream that names the node serving it (for ``X-EdgeCoder-Node``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from edgecoder.inference.types import Delta

__all__ = ("ServedStream",)


class ServedStream:
    """Wraps a stream of deltas; :attr:`node_id` is the node that serves it.

    For a mesh task the origin sets it when a worker admits the task, so a client that
    reads it after admission (the HTTP layers do) sees the worker's id.
    """

    __slots__ = ("_inner", "node_id")

    def __init__(self, inner: AsyncIterator[Delta], node_id: str) -> None:
        self._inner = inner
        self.node_id = node_id

    @classmethod
    def naming(
        cls, make: Callable[[ServedStream], AsyncIterator[Delta]], node_id: str
    ) -> ServedStream:
        """A stream whose generator is given the stream itself, to rename it when it knows."""
        stream = cls(_nothing(), node_id)
        stream._inner = make(stream)
        return stream

    def __aiter__(self) -> ServedStream:
        return self

    async def __anext__(self) -> Delta:
        return await anext(self._inner)

    async def aclose(self) -> None:
        """Close the underlying stream (cancels its generation)."""
        aclose = getattr(self._inner, "aclose", None)
        if aclose is not None:
            await aclose()


async def _nothing() -> AsyncIterator[Delta]:
    return
    yield  # pragma: no cover - makes this an async generator
