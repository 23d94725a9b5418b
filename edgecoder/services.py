"""The one facade the daemon builds and every adapter (HTTP, D-Bus, CLI) talks to.

Adapters never reach past it into storage or each other: each operation lives here
once, and the web routes, D-Bus methods and CLI commands are thin skins over it. The
inference operations go through the task router (:mod:`edgecoder.tasks.router`) once the
mesh runs: local first, else the fittest peer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgecoder import __version__
from edgecoder.access import AccessControl
from edgecoder.clock import Clock
from edgecoder.config import Config
from edgecoder.errors import BackendUnavailableError, ModelNotFoundError
from edgecoder.events import EventHub
from edgecoder.inference.backend import Backend
from edgecoder.inference.estimate import approximate_prompt_tokens
from edgecoder.inference.served import ServedStream
from edgecoder.inference.types import (
    ChatRequest,
    CompletionRequest,
    Delta,
    EmbeddingRequest,
    EmbeddingResult,
    ModelInfo,
    PullProgress,
)
from edgecoder.mesh.node import MeshNode
from edgecoder.mesh.peer_info import PEER
from edgecoder.security.identity import NodeIdentity
from edgecoder.security.mesh_guard import MeshGuard
from edgecoder.storage import tasks as task_store
from edgecoder.storage.database import Database
from edgecoder.storage.task_rows import RunRow, TaskRow
from edgecoder.tasks.origin import Origin
from edgecoder.tasks.router import Router
from edgecoder.tasks.worker import Worker

__all__ = ("BackendState", "Services", "TaskHistory")


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


@dataclass(frozen=True, slots=True)
class TaskHistory:
    """The newest mesh tasks this node offered and runs it did for peers, with the task
    protocol's counters (``/admin/tasks``)."""

    tasks: tuple[TaskRow, ...]
    runs: tuple[RunRow, ...]
    origin: dict[str, int]
    worker: dict[str, int]
    routing: dict[str, int]

    def as_json(self) -> dict[str, object]:
        """The history as JSON data."""
        return {
            "tasks": [task.as_json() for task in self.tasks],
            "runs": [run.as_json() for run in self.runs],
            "origin": self.origin,
            "worker": self.worker,
            "routing": self.routing,
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
        events: EventHub | None = None,
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
        self.events = events or EventHub()
        """The node's one event hub (see :mod:`edgecoder.events`)."""
        self.mesh: MeshNode | None = None
        self.router: Router | None = None
        self.origin: Origin | None = None
        self.worker: Worker | None = None
        self.in_flight = 0
        self.owner_busy = False
        self.connection_counts: dict[str, Callable[[], dict[str, int]]] = {}
        """Per listener, its connection counters (set once the listeners exist)."""
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
            "connections": {name: counts() for name, counts in self.connection_counts.items()},
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

    def served_by(self, stream: object = None) -> str:
        """The node that serves ``stream`` (this one when it is not a mesh task)."""
        return getattr(stream, "node_id", None) or self.identity.node_id

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
        """Every model this node can serve, itself or through a peer."""
        local = await self._backend().list_models() if self.backend is not None else []
        if self.backend is None and self.mesh is None:
            self._backend()  # raises: nothing can serve a model here
        names = {m.name for m in local}
        remote = [m for m in self._mesh_models() if m.name not in names]
        return local + sorted(remote, key=lambda m: m.name)

    def _mesh_models(self) -> list[ModelInfo]:
        if self.mesh is None or self.router is None or self.config.tasks.mode == "local-only":
            return []
        seen: dict[str, ModelInfo] = {}
        for _, advert in self.mesh.adverts():
            for entry in advert.models:
                if entry.name not in seen:
                    seen[entry.name] = ModelInfo(
                        name=entry.name,
                        backend="mesh",
                        context_length=entry.context_length,
                        size_bytes=entry.size_bytes,
                        digest=entry.digest,
                    )
        return list(seen.values())

    async def show_model(self, name: str) -> ModelInfo:
        """One model, here or on a peer; raises ModelNotFoundError."""
        if self.backend is not None:
            try:
                return await self.backend.show(name)
            except ModelNotFoundError:
                pass
        for info in self._mesh_models():
            if info.name == name:
                return info
        if self.backend is None and self.mesh is None:
            self._backend()
        raise ModelNotFoundError(f"model '{name}' is not served by this node or any peer")

    async def loaded_models(self) -> list[ModelInfo]:
        """Models in memory now."""
        return await self._backend().loaded_models()

    def chat(self, request: ChatRequest) -> ServedStream:
        """Stream a chat completion, here or on a peer (see :class:`Backend` for the contract)."""
        if self.router is not None:
            return self.router.route(request)
        return ServedStream(self.execute(request), self.node_id)

    def complete(self, request: CompletionRequest) -> ServedStream:
        """Stream a raw or fill-in-the-middle completion, here or on a peer."""
        if self.router is not None:
            return self.router.route(request)
        return ServedStream(self.execute(request), self.node_id)

    def execute(self, request: ChatRequest | CompletionRequest) -> AsyncIterator[Delta]:
        """Run a generation on this node's own backend, whoever asked for it."""
        if isinstance(request, ChatRequest):
            return self._counted(self._lazy(lambda b: b.chat(request)))
        return self._counted(self._lazy(lambda b: b.complete(request)))

    async def _lazy(self, start: Any) -> AsyncIterator[Delta]:
        # The backend check raises inside the stream, where admission reports it.
        async for delta in start(self._backend()):
            yield delta

    async def _counted(self, stream: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
        # How many generations run or wait here: what the capability advert reports.
        self.in_flight += 1
        try:
            async for delta in stream:
                yield delta
        finally:
            self.in_flight -= 1

    async def count_tokens(self, request: ChatRequest) -> int:
        """Tokens in ``request``'s prompt: the local backend's count, else an estimate.

        A model only peers serve is estimated (:mod:`edgecoder.inference.estimate`).

        :raises ModelNotFoundError: no such model here or on any peer.
        """
        if self.backend is not None:
            try:
                return await self.backend.count_tokens(request)
            except ModelNotFoundError:
                pass
        await self.show_model(request.model)
        return approximate_prompt_tokens(request)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Embed texts."""
        return await self._backend().embed(request)

    def pull_model(self, name: str) -> AsyncIterator[PullProgress]:
        """Download a model into the local backend (may raise UnsupportedError at once)."""
        return self._backend().pull(name)

    async def delete_model(self, name: str) -> None:
        """Remove a model from the local backend; raises ModelNotFoundError."""
        await self._backend().delete(name)

    def apply_config(self, config: Config) -> None:
        """Use ``config`` from now on, here and in the task protocol's parts."""
        self.config = config
        for part in (self.router, self.origin, self.worker):
            if part is not None:
                part.config = config

    # -- mesh tasks -----------------------------------------------------------------------

    def peer_key(self, node_id: str) -> bytes | None:
        """A peer's public key, from the signed records this node holds for it."""
        record = self.mesh_guard.records.get(node_id, PEER)
        if record is None:
            return None
        try:
            return bytes.fromhex(record.key)
        except ValueError:
            return None

    async def recent_tasks(self, limit: int = 50) -> TaskHistory:
        """Tasks this node offered and runs it did for peers, newest first, with counters."""
        tasks, runs = await self.database.run(
            lambda c: (task_store.recent_tasks(c, limit), task_store.recent_runs(c, limit))
        )
        return TaskHistory(
            tasks=tuple(tasks),
            runs=tuple(runs),
            origin=dict(self.origin.stats) if self.origin else {},
            worker=dict(self.worker.stats) if self.worker else {},
            routing=dict(self.router.decisions) if self.router else {},
        )
