"""Connection limits of one HTTP listener: counts per address, and the uvicorn protocol
that enforces them.

uvicorn's httptools protocol bounds neither how long a client may take to send its headers
nor how large they may be (httptools buffers a header value whole, however long), and its
``limit_concurrency`` is global and only applies once a request's headers are read.
:class:`GuardedHttpToolsProtocol` adds, per connection: a header read timeout, a header
size cap (``431``), and admission against per-address and per-listener caps (``503`` with
``Retry-After: 1``, written before the request is read). Idle keep-alive is uvicorn's own
``timeout_keep_alive``. Each listener has its own :class:`ConnectionTracker`, so a flood
on one port never refuses connections on the other.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import time
from asyncio import TimerHandle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import get_remote_addr
from uvicorn.server import ServerState

from edgecoder.config.model import ApiConfig, MeshConfig

__all__ = (
    "REPORT_INTERVAL_S",
    "ConnectionLimits",
    "ConnectionTracker",
    "GuardedHttpToolsProtocol",
    "ListenerConfig",
    "address_key",
)

log = logging.getLogger(__name__)

REPORT_INTERVAL_S = 10.0
"""Refused connections are logged at most once per this many seconds per listener."""

_LAST_CHANCE_S = 0.05
"""When the header timer fires, headers that arrived while the loop was busy may still sit
unread (uvloop runs timers before it polls sockets): one more poll before closing."""

LINGER_S = 2.0
"""How long a refused connection is kept half-closed while what its client sends is
discarded. Closing a socket with unread data sends a reset, which can destroy the ``503``
before the client reads it; a client that sent its request at once would see a reset."""

MAX_LINGERING = 64
"""Refused connections lingering at once per listener; beyond, they are closed at once."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The limits of one listener (the same keys in ``[api]`` and ``[mesh]``)."""

    header_timeout_s: float = 10.0
    max_header_bytes: int = 16 * 1024
    idle_timeout_s: int = 30
    max_connections: int = 512
    max_connections_per_address: int = 64

    @classmethod
    def of(cls, section: ApiConfig | MeshConfig) -> ConnectionLimits:
        """The limits configured in a listener's section."""
        return cls(
            header_timeout_s=section.header_timeout_s,
            max_header_bytes=section.max_header_bytes,
            idle_timeout_s=section.idle_timeout_s,
            max_connections=section.max_connections,
            max_connections_per_address=section.max_connections_per_address,
        )


def address_key(host: str | None) -> str:
    """What connections are counted under: the IPv4 address (also when IPv4-mapped), or
    the /64 of an IPv6 address, since one host is routinely given a whole /64."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class ConnectionTracker:
    """Open connections of one listener, in all and per address, against its caps.

    No I/O: :meth:`admit` decides, :meth:`release` forgets; the protocol does the rest.
    """

    def __init__(
        self,
        name: str,
        limits: ConnectionLimits,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.limits = limits
        self.open = 0
        """Connections admitted and not yet closed."""
        self.refused = 0
        """Connections refused since start."""
        self.lingering = 0
        """Refused connections still half-open (at most :data:`MAX_LINGERING`)."""
        self.timed_out = 0
        """Connections closed because their request head did not arrive in time."""
        self.oversized = 0
        """Connections answered ``431`` and closed."""
        self._per_address: dict[str, int] = {}
        self._clock = clock
        self._reported_at = -math.inf
        self._unreported = 0
        self._latest = ("", "")

    def counts(self) -> dict[str, int]:
        """The counters, as ``/healthz`` reports them under ``connections``."""
        return {
            "open": self.open,
            "refused": self.refused,
            "timed_out": self.timed_out,
            "oversized": self.oversized,
        }

    def count(self, key: str) -> int:
        """Open connections from the address ``key`` (see :func:`address_key`)."""
        return self._per_address.get(key, 0)

    def admit(self, key: str) -> str | None:
        """Count a new connection from ``key``, or refuse it.

        :returns: ``None`` when admitted (call :meth:`release` when it closes), else
            ``"address"`` or ``"listener"``: the cap it would exceed.
        """
        held = self._per_address.get(key, 0)
        if held >= self.limits.max_connections_per_address:
            self._refuse(key, "address")
            return "address"
        if self.open >= self.limits.max_connections:
            self._refuse(key, "listener")
            return "listener"
        self._per_address[key] = held + 1
        self.open += 1
        if self._unreported:
            self._report()
        return None

    def release(self, key: str) -> None:
        """Forget one admitted connection from ``key``."""
        held = self._per_address.get(key, 0)
        if held <= 1:
            self._per_address.pop(key, None)
        else:
            self._per_address[key] = held - 1
        self.open = max(0, self.open - 1)
        if self._unreported:
            self._report()

    def _refuse(self, key: str, cap: str) -> None:
        self.refused += 1
        self._unreported += 1
        self._latest = (key, cap)
        self._report()

    def _report(self) -> None:
        """Log the refusals not yet logged, unless the last report is too recent (then
        the next refusal, admission or release after the interval logs them)."""
        now = self._clock()
        if now - self._reported_at < REPORT_INTERVAL_S:
            return
        key, cap = self._latest
        which = (
            f"{self.limits.max_connections_per_address} per address"
            if cap == "address"
            else f"{self.limits.max_connections} in all"
        )
        log.warning(
            "%s listener: refused %d connection(s) since the last report, latest from %s "
            "(over %s; %d open)",
            self.name, self._unreported, key, which, self.open,
        )  # fmt: skip
        self._reported_at = now
        self._unreported = 0


def _response(status: bytes, code: str, message: str, extra: bytes = b"") -> bytes:
    kind = "server_error" if status.startswith(b"5") else "invalid_request_error"
    error = {"message": message, "type": kind, "param": None, "code": code}
    body = json.dumps({"error": error}).encode()
    length = str(len(body)).encode()
    return b"".join([
        b"HTTP/1.1 ", status, b"\r\ncontent-type: application/json\r\n",
        b"content-length: ", length, b"\r\n", extra, b"connection: close\r\n\r\n", body,
    ])  # fmt: skip


_RETRY = b"retry-after: 1\r\n"
_REFUSALS = {
    "address": _response(b"503 Service Unavailable", "too_many_connections",
                         "too many connections from this address; retry later", _RETRY),
    "listener": _response(b"503 Service Unavailable", "too_many_connections",
                          "too many connections to this node; retry later", _RETRY),
}  # fmt: skip


class ListenerConfig(uvicorn.Config):
    """uvicorn's config for one listener, carrying its limits and its tracker."""

    def __init__(self, app: Any, name: str, limits: ConnectionLimits, **kwargs: Any) -> None:
        """``kwargs`` go to :class:`uvicorn.Config`; ``http``, ``ws`` and the keep-alive
        timeout are set here."""
        super().__init__(
            app,
            http=GuardedHttpToolsProtocol,
            # A WebSocket upgrade would hand the socket to a protocol that is not counted.
            ws="none",
            timeout_keep_alive=limits.idle_timeout_s,
            **kwargs,
        )
        self.limits = limits
        self.tracker = ConnectionTracker(name, limits)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout, a header cap and admission.

    A refused connection is answered, half-closed, and its input discarded until its client
    closes (the transport then closes on EOF) or :data:`LINGER_S` passes: it is never
    parsed and never counted.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        if not isinstance(config, ListenerConfig):
            raise TypeError("GuardedHttpToolsProtocol needs a ListenerConfig")
        self._tracker = config.tracker
        self._limits = config.limits
        self._key: str | None = None
        """The address counted for this connection; None until admitted (or if refused)."""
        self._head_timer: TimerHandle | None = None
        self._last_chance = False
        self._in_head = True
        """Between requests or inside a request line and headers: what the caps cover."""
        self._head_bytes = 0
        self._head_tail = b""
        self._linger: TimerHandle | None = None

    # Admission

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Admit the connection, or answer ``503`` and close it without reading."""
        client = get_remote_addr(transport)
        key = address_key(client[0] if client else None)
        cap = self._tracker.admit(key)
        if cap is not None:
            self._refuse(transport, cap)
            return
        self._key = key
        super().connection_made(transport)
        self._arm_head_timer()

    def _refuse(self, transport: asyncio.Transport, cap: str) -> None:
        self.transport = transport
        transport.write(_REFUSALS[cap])
        if self._tracker.lingering >= MAX_LINGERING or not transport.can_write_eof():
            transport.close()
            return
        self._tracker.lingering += 1
        transport.write_eof()
        self._linger = self.loop.call_later(LINGER_S, transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        """Release the connection's count (refused ones were never counted)."""
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
            self._tracker.lingering -= 1
        if self._key is None:
            return
        self._tracker.release(self._key)
        self._key = None
        self._cancel_head_timer()
        super().connection_lost(exc)

    # The request head: size and time

    def data_received(self, data: bytes) -> None:
        """Feed the parser, unless the headers would outgrow ``max_header_bytes``."""
        if self._key is None or self.transport.is_closing():
            return  # refused, or being closed: discarded unread
        if self._in_head and not self._head_fits(data):
            self._refuse_head()
            return
        super().data_received(data)

    def _head_fits(self, data: bytes) -> bool:
        """Whether the head stays within the cap with ``data``: either all of it fits, or
        the blank line ending the head arrives within the cap (a body may follow)."""
        room = self._limits.max_header_bytes - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            self._head_tail = (self._head_tail + data)[-3:]
            return True
        window = self._head_tail + data[:room]
        return b"\r\n\r\n" in window or b"\n\n" in window

    def _refuse_head(self) -> None:
        limit = self._limits.max_header_bytes
        self._tracker.oversized += 1
        # Per connection, so at debug level: a header flood must not become a log flood.
        log.debug("%s listener: request headers over %d bytes from %s refused",
                  self._tracker.name, limit, self._key)  # fmt: skip
        if self.cycle is None or self.cycle.response_complete:
            message = f"request line and headers exceed {limit} bytes"
            status = b"431 Request Header Fields Too Large"
            self.transport.write(_response(status, "headers_too_large", message))
        self.transport.close()

    def on_headers_complete(self) -> None:
        """The head is whole: its timer and byte count stop until the next request."""
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """Whatever arrives next is the next request's head."""
        self._in_head = True
        self._head_bytes = 0
        self._head_tail = b""
        super().on_message_complete()

    def on_response_complete(self) -> None:
        """On keep-alive, the next request's head must arrive within the timeout too."""
        super().on_response_complete()
        if not self.transport.is_closing() and self._in_head and not self._busy():
            self._arm_head_timer()

    def _busy(self) -> bool:
        """A request is being answered (a pipelined one may have just started)."""
        return self.cycle is not None and not self.cycle.response_complete

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._last_chance = False
        self._head_timer = self.loop.call_later(self._limits.header_timeout_s, self._head_late)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        if not self._last_chance:
            self._last_chance = True
            self._head_timer = self.loop.call_later(_LAST_CHANCE_S, self._head_late)
            return
        self._head_timer = None
        if not self.transport.is_closing() and not self._busy():
            self._tracker.timed_out += 1
            log.debug("%s listener: no complete request head from %s within %ss: closed",
                      self._tracker.name, self._key, self._limits.header_timeout_s)  # fmt: skip
            self.transport.close()
