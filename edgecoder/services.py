"""The one facade the daemon builds and every adapter (HTTP, D-Bus, CLI) talks to.

Adapters never reach past it into storage or each other: each operation lives here
once, and the web routes, D-Bus methods and CLI commands are thin skins over it. The
inference operations are where the task router will later decide between the local
backend and a peer; today they always run locally.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from edgecoder import __version__
from edgecoder.access import AccessControl
from edgecoder.clock import Clock
from edgecoder.config import Config
from edgecoder.errors import BackendUnavailableError, ModelNotFoundError
from edgecoder.inference.backend import Backend
from edgecoder.inference.types import (
    ChatRequest,
    CompletionRequest,
    Delta,
    EmbeddingRequest,
    EmbeddingResult,
    ModelInfo,
)
from edgecoder.mesh.node import MeshNode
from edgecoder.security.identity import NodeIdentity
from edgecoder.security.mesh_guard import MeshGuard
from edgecoder.storage.database import Database

__all__ = ("BackendState", "Services")


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


class Services:
    """Everything a running node offers its adapters."""

    def __init__(
        self,
        *,
        config: Config,
        identity: NodeIdentity,
        database: Database,
        clock: Clock,
        access: AccessControl,
        mesh_guard: MeshGuard,
        extensions: bool,
        backend: Backend | None,
        backend_state: BackendState,
        listeners: Mapping[str, str],
        starts: int,
    ) -> None:
        self.config = config
        self.identity = identity
        self.database = database
        self.clock = clock
        self.access = access
        self.mesh_guard = mesh_guard
        self.extensions = extensions
        self.backend = backend
        self.backend_state = backend_state
        self.listeners = dict(listeners)
        self.starts = starts
        self.mesh: MeshNode | None = None
        self.in_flight = 0
        self.owner_busy = False
        self._started = clock.monotonic()

    @property
    def node_id(self) -> str:
        """This node's id."""
        return self.identity.node_id

    def uptime_s(self) -> int:
        """Whole seconds since the node started serving."""
        return int(self.clock.monotonic() - self._started)

    def health(self) -> dict[str, object]:
        """The public health document served at ``/healthz`` on both listeners."""
        conflict = self.mesh is not None and self.mesh.conflict is not None
        return {
            "status": "degraded" if conflict else "ok",
            "node_id": self.identity.node_id,
            "public_key": self.identity.public_key.hex(),
            "version": __version__,
            "network": self.config.node.network,
            "uptime_s": self.uptime_s(),
            "extensions": self.extensions,
            "backend": self.backend_state.as_dict(),
            "listeners": dict(self.listeners),
            "security": {"refused": self.mesh_guard.audit.counts()},
            "mesh": self.mesh.health() if self.mesh is not None else {"peer_count": 0},
        }

    # -- inference ----------------------------------------------------------------------

    def _backend(self) -> Backend:
        if self.backend is None:
            raise BackendUnavailableError(
                f"no inference backend is available: {self.backend_state.reason}"
            )
        return self.backend

    def served_by(self) -> str:
        """The node that serves inference requests made here (always this one, for now)."""
        return self.identity.node_id

    async def default_model(self) -> str:
        """``inference.model`` when set, else the first model the backend lists.

        :raises ModelNotFoundError: the backend has no model at all.
        """
        if self.config.inference.model:
            return self.config.inference.model
        models = await self.list_models()
        if not models:
            raise ModelNotFoundError(
                "this node has no model; import one with 'edgecoder models add'"
            )
        return models[0].name

    async def list_models(self) -> list[ModelInfo]:
        """Every model this node can serve."""
        return await self._backend().list_models()

    async def show_model(self, name: str) -> ModelInfo:
        """One model; raises ModelNotFoundError."""
        return await self._backend().show(name)

    async def loaded_models(self) -> list[ModelInfo]:
        """Models in memory now."""
        return await self._backend().loaded_models()

    def chat(self, request: ChatRequest) -> AsyncIterator[Delta]:
        """Stream a chat completion (see :class:`Backend` for the stream's contract)."""
        return self._counted(self._backend().chat(request))

    def complete(self, request: CompletionRequest) -> AsyncIterator[Delta]:
        """Stream a raw or fill-in-the-middle completion."""
        return self._counted(self._backend().complete(request))

    async def _counted(self, stream: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
        # How many generations run or wait here: what the capability advert reports.
        self.in_flight += 1
        try:
            async for delta in stream:
                yield delta
        finally:
            self.in_flight -= 1

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Embed texts."""
        return await self._backend().embed(request)
