"""The operator's operations on a running node: one implementation behind D-Bus and HTTP.

``edgecoderctl`` (over D-Bus, :mod:`edgecoder.adapters.control.dbus_service`) and the admin
routes of the client listener (:mod:`edgecoder.adapters.web.admin_api`) are thin skins
over :class:`Control`: status, peers, models (list, pull as a job with progress, remove,
default), mode, owner-busy, API keys and their budgets, the ledger, reload. Runtime
choices an operator makes (default model, mode, owner-busy) are kept in the database and
survive a restart.

Control publishes on the node's event hub (``services.events``): ``pull.progress`` as a
pull job moves, and ``properties.changed`` with the properties whose values changed —
when an operation changes them, ``PeerCount`` when a ``peer.state`` event changes it and
``Balance`` when a ``ledger.balance`` event does.
No property changes with time alone (uptime is not one), so none is polled.

Errors are the project's own: ``ModelNotFoundError`` (no such model or job),
``BadRequestError`` (a bad argument), ``UnsupportedError`` (the backend cannot),
``BackendUnavailableError``; each surface maps them once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from edgecoder import __version__
from edgecoder.config import Config
from edgecoder.config.model import TASK_MODES
from edgecoder.errors import BadRequestError, EdgeCoderError, ModelNotFoundError
from edgecoder.events import (
    BalanceChanged,
    Event,
    PeerStateChanged,
    PropertiesChanged,
    PullProgress,
)
from edgecoder.services import Services
from edgecoder.storage import node_meta

__all__ = ("Control", "PullJob")

log = logging.getLogger(__name__)

_DEFAULT_MODEL = "control.default_model"
_MODE = "control.mode"
_OWNER_BUSY = "control.owner_busy"


@dataclass(slots=True)
class PullJob:
    """A model download in progress (or finished)."""

    id: int
    model: str
    state: str = "running"
    """``running``, ``done`` or ``failed``."""
    status: str = "starting"
    completed: int = 0
    total: int = 0
    error: str = ""

    @property
    def percent(self) -> int:
        """Whole percent done (0 while the size is unknown)."""
        return min(100, self.completed * 100 // self.total) if self.total else 0

    def as_dict(self) -> dict[str, Any]:
        """The job as JSON data."""
        return {"id": self.id, "model": self.model, "state": self.state, "status": self.status,
                "completed": self.completed, "total": self.total, "percent": self.percent,
                "error": self.error}  # fmt: skip

    def event(self) -> PullProgress:
        """The job as it is now, as a ``pull.progress`` event."""
        return PullProgress(self.id, self.model, self.state, self.status, self.completed,
                            self.total, self.error)  # fmt: skip


class Control:
    """Operations on the running node, for operators."""

    def __init__(self, services: Services, reload_config: Callable[[], Config]) -> None:
        self.services = services
        self._reload_config = reload_config
        self.jobs: dict[int, PullJob] = {}
        self._job_ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.events = services.events
        self._announced = self.properties()
        """The properties as subscribers last heard them."""
        self._peers = self.events.subscribe(self._on_peer, {PeerStateChanged.kind})
        self._balance = self.events.subscribe(self._on_balance, {BalanceChanged.kind})

    # -- state kept across restarts ---------------------------------------------------------

    async def restore(self) -> None:
        """Apply the operator's choices saved by an earlier run."""
        saved = await self.services.database.run(node_meta.read_all)
        config = self.services.config
        if saved.get(_DEFAULT_MODEL):
            config = replace(
                config, inference=replace(config.inference, model=saved[_DEFAULT_MODEL])
            )
        if saved.get(_MODE) in TASK_MODES:
            config = replace(config, tasks=replace(config.tasks, mode=saved[_MODE]))
        self._apply(config)
        self.services.owner_busy = saved.get(_OWNER_BUSY) == "1"
        self._announced = self.properties()  # before anyone listens: nothing to announce

    async def _save(self, key: str, value: str) -> None:
        await self.services.database.run(lambda c: node_meta.write(c, key, value))

    def _apply(self, config: Config) -> None:
        self.services.apply_config(config)

    def _notify(self, **properties: Any) -> None:
        changed = {k: v for k, v in properties.items() if self._announced.get(k) != v}
        if changed:
            self._announced.update(changed)
            self.events.publish(PropertiesChanged(changed))

    def _on_peer(self, event: Event) -> None:
        self._notify(PeerCount=self._peer_count())

    def _on_balance(self, event: Event) -> None:
        assert isinstance(event, BalanceChanged)
        self._notify(Balance=event.balance)

    # -- reads ------------------------------------------------------------------------------

    def properties(self) -> dict[str, Any]:
        """The D-Bus properties, by name."""
        s = self.services
        return {
            "NodeId": s.node_id,
            "Version": __version__,
            "Mode": s.config.tasks.mode,
            "Backend": s.backend_state.active or "",
            "DefaultModel": s.config.inference.model,
            "PeerCount": self._peer_count(),
            "OwnerBusy": s.owner_busy,
            "UsingExtensions": s.extensions,
            "Balance": s.economy.ledger.state.balance,
        }

    def _peer_count(self) -> int:
        # Alive or suspect; counted on every peer.state event, so O(1), not a pass over peers.
        return self.services.mesh.membership.live_count

    def status(self) -> dict[str, Any]:
        """The node's health document plus the operator's settings."""
        return {**self.services.health(), "mode": self.services.config.tasks.mode,
                "owner_busy": self.services.owner_busy,
                "default_model": self.services.config.inference.model}  # fmt: skip

    def peers(self) -> list[dict[str, Any]]:
        """Every known peer, as JSON data (see :meth:`PeerView.as_json`)."""
        return [peer.as_json() for peer in self.services.mesh.peers()]

    async def models(self) -> list[dict[str, Any]]:
        """Every model this node can serve, itself or through a peer."""
        default = self.services.config.inference.model
        return [
            {"name": m.name, "backend": m.backend, "context_length": m.context_length,
             "size_bytes": m.size_bytes, "digest": m.digest, "loaded": m.loaded,
             "default": m.name == default}
            for m in await self.services.list_models()
        ]  # fmt: skip

    async def ledger(self, limit: int = 50) -> dict[str, Any]:
        """This node's credits and newest chain entries (``GET /admin/ledger``'s document)."""
        return await self.services.ledger_view(limit)

    # -- models -----------------------------------------------------------------------------

    def pull_model(self, name: str) -> PullJob:
        """Start downloading ``name``; the job reports progress until it ends.

        :raises BadRequestError: no model name.
        :raises UnsupportedError: the backend cannot download (the embedded one).
        """
        if not name.strip():
            raise BadRequestError("a model name is needed", "model")
        stream = self.services.pull_model(name)  # raises UnsupportedError at once
        job = PullJob(next(self._job_ids), name)
        self.jobs[job.id] = job
        task = asyncio.create_task(self._run_pull(job, stream), name=f"edgecoder-pull-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run_pull(self, job: PullJob, stream: Any) -> None:
        try:
            async for progress in stream:
                job.status = progress.status
                if progress.total:  # status-only steps (manifest, verify) carry no sizes
                    job.completed, job.total = progress.completed, progress.total
                self.events.publish(job.event())
            job.state, job.status = "done", "success"
            if job.total:
                job.completed = job.total
        except EdgeCoderError as exc:
            job.state, job.error = "failed", str(exc)
        self.events.publish(job.event())

    def job(self, job_id: int) -> PullJob:
        """A pull job by id.

        :raises ModelNotFoundError: no such job.
        """
        found = self.jobs.get(job_id)
        if found is None:
            raise ModelNotFoundError(f"no pull job {job_id}")
        return found

    async def remove_model(self, name: str) -> None:
        """Delete a model from this node.

        :raises ModelNotFoundError: this node has no such model.
        """
        await self.services.delete_model(name)

    async def set_default_model(self, name: str) -> None:
        """Make ``name`` the default model (kept across restarts).

        :raises ModelNotFoundError: neither this node nor a peer serves it.
        """
        await self.services.show_model(name)
        config = self.services.config
        self._apply(replace(config, inference=replace(config.inference, model=name)))
        await self._save(_DEFAULT_MODEL, name)
        self._notify(DefaultModel=name)

    # -- mode and owner -----------------------------------------------------------------------

    async def set_mode(self, mode: str) -> None:
        """``mesh`` or ``local-only`` (kept across restarts).

        :raises BadRequestError: another value.
        """
        if mode not in TASK_MODES:
            raise BadRequestError(f"mode must be one of {', '.join(TASK_MODES)}", "mode")
        config = self.services.config
        self._apply(replace(config, tasks=replace(config.tasks, mode=mode)))
        await self._save(_MODE, mode)
        self._notify(Mode=mode)

    async def set_owner_busy(self, busy: bool) -> None:
        """Say whether the owner is using this machine (peers then avoid it)."""
        self.services.owner_busy = busy
        await self._save(_OWNER_BUSY, "1" if busy else "0")
        await self.services.mesh.publish_advert()
        self._notify(OwnerBusy=busy)

    # -- API keys -----------------------------------------------------------------------------

    async def create_api_key(self, name: str, admin: bool) -> str:
        """A new API key (shown once).

        :raises BadRequestError: a bad or taken name.
        """
        return await self.services.access.create_key(name, admin)

    async def list_api_keys(self) -> list[dict[str, Any]]:
        """Every key record (never a key itself)."""
        return [
            {"name": k.name, "admin": k.admin, "active": k.active, "created_ms": k.created_ms,
             "revoked_ms": k.revoked_ms, "last_used_ms": k.last_used_ms,
             "budget_mc": k.budget_mc, "spent_mc": k.spent_mc}
            for k in await self.services.access.list_keys()
        ]  # fmt: skip

    async def set_api_key_budget(self, name: str, budget_mc: int | None) -> dict[str, Any]:
        """Give a key's credit account a budget (mc; None: no limit), effective at once.

        :returns: the key's ``name``, ``budget_mc`` and ``spent_mc``.
        :raises BadRequestError: no key has that name, or a budget below 0.
        """
        await self.services.access.set_budget(name, budget_mc)
        record = next(k for k in await self.services.access.list_keys() if k.name == name)
        return {"name": name, "budget_mc": record.budget_mc, "spent_mc": record.spent_mc}

    async def revoke_api_key(self, name: str) -> None:
        """Revoke a key by name.

        :raises BadRequestError: no active key has that name.
        """
        await self.services.access.revoke_key(name)

    # -- configuration ------------------------------------------------------------------------

    async def reload(self) -> dict[str, Any]:
        """Re-read the configuration; apply what can change while running.

        :returns: ``{"applied": [keys], "restart_needed": [keys]}``.
        :raises ConfigError: the new configuration is invalid (nothing is changed).
        """
        fresh = await asyncio.to_thread(self._reload_config)
        old = self.services.config
        changed = _changed_keys(old, fresh)
        live = {k for k in changed if k.split(".")[0] in {"tasks"} or k in _LIVE_KEYS}
        self._apply(fresh)
        if "node.log_level" in live:
            logging.getLogger().setLevel(fresh.node.log_level.upper())
        props = self.properties()
        self._notify(Mode=props["Mode"], DefaultModel=props["DefaultModel"])
        return {"applied": sorted(live), "restart_needed": sorted(changed - live)}

    async def aclose(self) -> None:
        """Stop running pulls and listening to the mesh."""
        self._peers.close()
        self._balance.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)


_LIVE_KEYS = {
    "inference.default_max_tokens",
    "inference.model",
    "mesh.price_pct",
    "node.log_level",
}


def _changed_keys(old: Config, new: Config) -> set[str]:
    changed = set()
    for section in ("node", "identity", "mesh", "api", "inference", "tasks", "daemon"):
        a, b = getattr(old, section), getattr(new, section)
        for name in a.__dataclass_fields__:
            if getattr(a, name) != getattr(b, name):
                changed.add(f"{section}.{name}")
    return changed
