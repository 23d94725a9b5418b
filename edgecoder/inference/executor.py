"""This machine as a compute resource: its backend (or why it has none), the generations
running or waiting on it, and whether its owner is using it.

The router and the worker run generations through :meth:`LocalExecutor.execute`, so one
count says how busy the machine is, whoever asked; the capability advert reports it. A
node without a usable backend still has an executor: every call then raises
:class:`~edgecoder.errors.BackendUnavailableError` with the reason, and the node serves
through its peers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from edgecoder.errors import BackendUnavailableError
from edgecoder.inference.backend import Backend
from edgecoder.inference.types import (
    ChatRequest,
    CompletionRequest,
    Delta,
    EmbeddingRequest,
    EmbeddingResult,
    ModelInfo,
    PullProgress,
)

__all__ = ("BackendState", "LocalExecutor")


@dataclass(frozen=True, slots=True)
class BackendState:
    """Which inference backend serves this node, and why."""

    requested: str
    active: str | None
    state: str
    """``ready`` or ``unavailable``."""
    reason: str

    def as_dict(self) -> dict[str, object]:
        """The JSON shape reported by ``/healthz`` and ``edgecoder status``."""
        return {
            "requested": self.requested,
            "active": self.active,
            "state": self.state,
            "reason": self.reason,
        }


class LocalExecutor:
    """Runs generations on this node's own backend and counts them."""

    def __init__(self, backend: Backend | None, state: BackendState) -> None:
        self._backend = backend
        self.state = state
        self.in_flight = 0
        """Generations running or waiting for a slot here now."""
        self.owner_busy = False
        """The machine's owner is using it: peers' work should go elsewhere."""

    @property
    def available(self) -> bool:
        """Whether a backend serves this node."""
        return self._backend is not None

    def backend(self) -> Backend:
        """The backend.

        :raises BackendUnavailableError: this node has none (the reason says why).
        """
        if self._backend is None:
            raise BackendUnavailableError(f"no inference backend is available: {self.state.reason}")
        return self._backend

    def execute(self, request: ChatRequest | CompletionRequest) -> AsyncIterator[Delta]:
        """Run a generation here, whoever asked for it (never routed again).

        A missing backend is raised from inside the stream, where admission reports it.
        """
        return self._counted(request)

    async def _counted(self, request: ChatRequest | CompletionRequest) -> AsyncIterator[Delta]:
        self.in_flight += 1
        try:
            backend = self.backend()
            stream = (
                backend.chat(request)
                if isinstance(request, ChatRequest)
                else backend.complete(request)
            )
            async for delta in stream:
                yield delta
        finally:
            self.in_flight -= 1

    async def list_models(self) -> list[ModelInfo]:
        """The models this machine holds (none without a backend)."""
        return await self._backend.list_models() if self._backend is not None else []

    async def loaded_models(self) -> list[ModelInfo]:
        """Models in memory now (none without a backend)."""
        return await self._backend.loaded_models() if self._backend is not None else []

    async def show(self, name: str) -> ModelInfo:
        """One local model.

        :raises ModelNotFoundError: not held here.
        :raises BackendUnavailableError: no backend.
        """
        return await self.backend().show(name)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Embed texts here."""
        return await self.backend().embed(request)

    def pull(self, name: str) -> AsyncIterator[PullProgress]:
        """Download a model into the backend (may raise UnsupportedError at once)."""
        return self.backend().pull(name)

    async def delete(self, name: str) -> None:
        """Remove a model from the backend; raises ModelNotFoundError."""
        await self.backend().delete(name)

    async def close(self) -> None:
        """Close the backend (once its generations are done)."""
        if self._backend is not None:
            await self._backend.close()
