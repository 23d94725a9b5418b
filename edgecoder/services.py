"""The one facade the daemon builds and every adapter (HTTP, D-Bus, CLI) talks to.

Adapters never reach past it into storage or each other: each operation lives here
once, and the web routes, D-Bus methods and CLI commands are thin skins over it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edgecoder import __version__
from edgecoder.clock import Clock
from edgecoder.config import Config
from edgecoder.security.identity import NodeIdentity
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
        extensions: bool,
        backend: BackendState,
        listeners: Mapping[str, str],
        starts: int,
    ) -> None:
        self.config = config
        self.identity = identity
        self.database = database
        self.clock = clock
        self.extensions = extensions
        self.backend = backend
        self.listeners = dict(listeners)
        self.starts = starts
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
        return {
            "status": "ok",
            "node_id": self.identity.node_id,
            "public_key": self.identity.public_key.hex(),
            "version": __version__,
            "network": self.config.node.network,
            "uptime_s": self.uptime_s(),
            "extensions": self.extensions,
            "backend": self.backend.as_dict(),
            "listeners": dict(self.listeners),
        }
