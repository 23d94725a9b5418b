"""The two HTTP listeners: sockets bound up front, served by uvicorn inside our loop.

Binding happens before anything is written to disk, so a port in use fails fast and
leaves nothing behind. The embedded uvicorn servers never install signal handlers:
the daemon owns signals and tells them when to stop. Each bounds its own connections
(header time and size, idle keep-alive, per-address and total counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Generator

import uvicorn
from starlette.types import ASGIApp

from edgecoder.config.model import ApiConfig, MeshConfig
from edgecoder.daemon.connections import ConnectionLimits, ListenerConfig
from edgecoder.errors import ListenerError

__all__ = ("EmbeddedServer", "bind_listener", "describe")

log = logging.getLogger(__name__)

_HINTS = {
    errno.EADDRINUSE: "the port is in use (is another agent running? choose another port)",
    errno.EADDRNOTAVAIL: "the address is not one of this machine's",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
}


def bind_listener(name: str, host: str, port: int) -> socket.socket:
    """Bind (not yet listen) a TCP socket for the ``name`` listener.

    :raises ListenerError: the address cannot be bound; the message says why.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        reason = _HINTS.get(exc.errno or 0, exc.strerror or str(exc))
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        raise ListenerError(
            exc.errno or 0, f"{name} listener cannot bind {where}: {reason}"
        ) from None
    return sock


def describe(sock: socket.socket) -> str:
    """``host:port`` of a bound socket, with the real port when 0 was asked for."""
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that runs inside the daemon's loop and leaves signals alone.

    Its connections are bounded by the listener's limits (see
    :mod:`edgecoder.daemon.connections`); ``tracker`` counts them.
    """

    def __init__(
        self,
        app: ASGIApp,
        name: str,
        graceful_timeout_s: int,
        section: ApiConfig | MeshConfig | None = None,
    ) -> None:
        """``section`` is the listener's ``[api]`` or ``[mesh]`` configuration, whose
        connection limits apply; None applies :class:`ConnectionLimits`' defaults."""
        limits = ConnectionLimits() if section is None else ConnectionLimits.of(section)
        config = ListenerConfig(
            app,
            name,
            limits,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=graceful_timeout_s,
        )
        super().__init__(config)
        self.name = name
        self.tracker = config.tracker
        self.serving = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Do not install handlers: the daemon owns SIGINT and SIGTERM."""
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start accepting, then mark the server as serving."""
        await super().startup(sockets=sockets)
        self.serving.set()
