"""The one facade the daemon builds and every adapter (HTTP, D-Bus, CLI) talks to.

Adapters never reach past it into storage or each other: each operation lives here
once, and the web routes, D-Bus methods and CLI commands are thin skins over it. It is
complete when made: the daemon builds every part first (:mod:`edgecoder.daemon`), so no
attribute is ever missing. Generations go through the task router
(:mod:`edgecoder.tasks.router`): local first, else the fittest peer; the local executor
(:mod:`edgecoder.inference.executor`) runs them here and counts them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from edgecoder import __version__
from edgecoder.access import AccessControl
from edgecoder.clock import Clock
from edgecoder.config import Config
from edgecoder.errors import BadRequestError, ModelNotFoundError
from edgecoder.events import EventHub
from edgecoder.inference.estimate import approximate_prompt_tokens
from edgecoder.inference.executor import BackendState, LocalExecutor
from edgecoder.inference.served import ServedStream
from edgecoder.inference.types import (
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResult,
    ModelInfo,
    PullProgress,
)
from edgecoder.ledger.economy import Economy
from edgecoder.ledger.peer_heads import known_heads
from edgecoder.ledger.verification import read_chains, verify_chains
from edgecoder.mesh.node import MeshNode
from edgecoder.security.identity import NodeIdentity, is_node_id
from edgecoder.security.mesh_guard import MeshGuard
from edgecoder.storage import ledger_rows
from edgecoder.storage import tasks as task_store
from edgecoder.storage.database import Database
from edgecoder.storage.task_rows import RunRow, TaskRow
from edgecoder.tasks.origin import Origin
from edgecoder.tasks.router import Router
from edgecoder.tasks.worker import Worker

__all__ = ("BackendState", "Configured", "Services", "TaskHistory")


class Configured(Protocol):
    """A part that reads its settings from a :class:`Config` replaced on reload."""

    config: Config


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
        executor: LocalExecutor,
        mesh: MeshNode,
        router: Router,
        origin: Origin,
        worker: Worker,
        economy: Economy,
        events: EventHub,
        listeners: Mapping[str, str],
        starts: int,
        configured: Sequence[Configured] = (),
    ) -> None:
        """``configured``: parts besides the router, origin and worker that follow
        :meth:`apply_config`."""
        self.config = config
        self.identity = identity
        self.database = database
        self.clock = clock
        self.access = access
        self.mesh_guard = mesh_guard
        self.extensions = extensions
        self.executor = executor
        self.mesh = mesh
        self.router = router
        self.origin = origin
        self.worker = worker
        self.economy = economy
        """This node in its network's credit economy; ``economy.ledger`` is its chain."""
        self.events = events
        """The node's one event hub (see :mod:`edgecoder.events`)."""
        self.listeners = dict(listeners)
        self.starts = starts
        self.connection_counts: dict[str, Callable[[], dict[str, int]]] = {}
        """Per listener, its connection counters (set once the listeners exist)."""
        self._configured: tuple[Configured, ...] = (router, origin, worker, *configured)
        self._started = clock.monotonic()

    @property
    def node_id(self) -> str:
        """This node's id."""
        return self.identity.node_id

    @property
    def backend_state(self) -> BackendState:
        """Which backend serves this node, and why."""
        return self.executor.state

    @property
    def owner_busy(self) -> bool:
        """Whether the machine's owner is using it (peers' work goes elsewhere)."""
        return self.executor.owner_busy

    @owner_busy.setter
    def owner_busy(self, busy: bool) -> None:
        self.executor.owner_busy = busy

    def uptime_s(self) -> int:
        """Whole seconds since the node started serving."""
        return int(self.clock.monotonic() - self._started)

    def health(self) -> dict[str, object]:
        """The public health document served at ``/healthz`` on both listeners."""
        return {
            "status": "degraded" if self.mesh.conflict is not None else "ok",
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
            "mesh": self.mesh.health(),
        }

    # -- inference ----------------------------------------------------------------------

    def served_by(self, stream: object = None) -> str:
        """The node that serves ``stream`` (this one when it is not a mesh task)."""
        return getattr(stream, "node_id", None) or self.identity.node_id

    async def default_model(self) -> str:
        """``inference.model`` when set, else the first model this node or a peer lists.

        :raises ModelNotFoundError: no model at all.
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
        local = await self.executor.list_models()
        names = {m.name for m in local}
        remote = [m for m in self._mesh_models() if m.name not in names]
        return local + sorted(remote, key=lambda m: m.name)

    def _mesh_models(self) -> list[ModelInfo]:
        if self.config.tasks.mode == "local-only":
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
        if self.executor.available:
            try:
                return await self.executor.show(name)
            except ModelNotFoundError:
                pass
        for info in self._mesh_models():
            if info.name == name:
                return info
        raise ModelNotFoundError(f"model '{name}' is not served by this node or any peer")

    async def loaded_models(self) -> list[ModelInfo]:
        """Models in memory here now (raises BackendUnavailableError without a backend)."""
        return await self.executor.backend().loaded_models()

    def chat(self, request: ChatRequest, account: str | None = None) -> ServedStream:
        """Stream a chat completion, here or on a peer (see :class:`Backend` for the
        contract); a peer's work is charged to ``account``, the API key that asked."""
        return self.router.route(request, account)

    def complete(self, request: CompletionRequest, account: str | None = None) -> ServedStream:
        """Stream a raw or fill-in-the-middle completion, here or on a peer; a peer's work
        is charged to ``account``, the API key that asked."""
        return self.router.route(request, account)

    async def count_tokens(self, request: ChatRequest) -> int:
        """Tokens in ``request``'s prompt: the local backend's count, else an estimate.

        A model only peers serve is estimated (:mod:`edgecoder.inference.estimate`).

        :raises ModelNotFoundError: no such model here or on any peer.
        """
        if self.executor.available:
            try:
                return await self.executor.backend().count_tokens(request)
            except ModelNotFoundError:
                pass
        await self.show_model(request.model)
        return approximate_prompt_tokens(request)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Embed texts here."""
        return await self.executor.embed(request)

    def pull_model(self, name: str) -> AsyncIterator[PullProgress]:
        """Download a model into the local backend (may raise UnsupportedError at once)."""
        return self.executor.pull(name)

    async def delete_model(self, name: str) -> None:
        """Remove a model from the local backend; raises ModelNotFoundError."""
        await self.executor.delete(name)

    def apply_config(self, config: Config) -> None:
        """Use ``config`` from now on, here and in every part that reads it."""
        self.config = config
        for part in self._configured:
            part.config = config

    # -- credits --------------------------------------------------------------------------

    async def ledger_view(self, limit: int = 50, before: int | None = None) -> dict[str, object]:
        """This node's credits and its newest chain entries (below seq ``before``), as JSON.

        ``verified``: the chain verified when the node started and every entry since was
        checked by the chain rules before it was written.
        """
        economy, ledger = self.economy, self.economy.ledger
        state, node = ledger.state, self.node_id
        entries = await self.database.run(
            lambda c: ledger_rows.recent_entries(c, node, limit, before)
        )
        return {
            "node_id": node,
            "network_key": economy.book.network_key,
            "holds_network_key": economy.network_key is not None,
            "balance": state.balance,
            "held": ledger.held,
            "available": ledger.available,
            "allowance": state.allowance,
            "head": {"seq": state.seq, "hash": state.head},
            "verified": True,
            "checkpoint": None
            if economy.checkpoint is None
            else {
                "epoch": economy.checkpoint.epoch,
                "hash": economy.checkpoint.hash,
                "root": economy.checkpoint.root,
                "proof": economy.proof,
            },
            "entries": [e.as_json() for e in entries],
        }

    async def ledger_peers(self) -> dict[str, object]:
        """Every ledger head this node holds from its peers (see
        :func:`~edgecoder.ledger.peer_heads.known_heads`), as JSON."""
        pinned = self.economy.book.network_key
        stored = await self.database.run(ledger_rows.chain_heads)
        return {"node_id": self.node_id, "network_key": pinned,
                "peers": known_heads(self.mesh, pinned, stored)}  # fmt: skip

    async def vouch(self, node: str) -> dict[str, object]:
        """Vouch for ``node``'s starting allowance, as the network key's holder or as a node
        with standing (:meth:`Economy.vouch_for`).

        :raises BadRequestError: ``node`` is not a node id.
        :raises LedgerError: this node may not vouch for it (the code says why).
        """
        if not is_node_id(node):
            raise BadRequestError("node must be a node id", "node")
        vouch = await self.economy.vouch_for(node)
        return {"node": vouch.node, "amount": vouch.amount, "voucher": vouch.voucher,
                "slot": vouch.slot, "hash": vouch.hash, "vouch": vouch.as_json()}  # fmt: skip

    async def verify_ledger(self) -> dict[str, object]:
        """Verify every chain this node holds, from its first entry (links, signatures
        where the author's key is known, the chain rules), as JSON: ``verified`` and a
        report per chain (:mod:`edgecoder.ledger.verification`)."""
        chains = await self.database.run(read_chains)
        me = self.identity
        keys = {node: self.mesh_guard.peer_key(node) for node in chains}
        keys[me.node_id] = me.public_key
        reports = await asyncio.to_thread(
            verify_chains, chains, me.node_id, keys.get, self.economy.book.lookup
        )
        return {"node_id": me.node_id, "verified": all(r.verified for r in reports),
                "chains": [r.as_json() for r in reports]}  # fmt: skip

    # -- mesh tasks -----------------------------------------------------------------------

    async def recent_tasks(self, limit: int = 50) -> TaskHistory:
        """Tasks this node offered and runs it did for peers, newest first, with counters."""
        tasks, runs = await self.database.run(
            lambda c: (task_store.recent_tasks(c, limit), task_store.recent_runs(c, limit))
        )
        return TaskHistory(
            tasks=tuple(tasks),
            runs=tuple(runs),
            origin=dict(self.origin.stats),
            worker=dict(self.worker.stats),
            routing=dict(self.router.decisions),
        )
