"""The systemd notification protocol (``sd_notify``): readiness, status, watchdog, stopping.

Messages are datagrams of ``KEY=VALUE`` lines sent to ``$NOTIFY_SOCKET`` (a path, or
an abstract socket written with a leading ``@``). Without the variable every call is a
no-op, so the agent runs the same under systemd, in a shell, and in tests.
"""

from __future__ import annotations

import logging
import os
import socket

from edgecoder.config import SystemdEnv

__all__ = ("Notifier",)

log = logging.getLogger(__name__)


class Notifier:
    """Sends state changes to the service manager, if there is one."""

    def __init__(self, env: SystemdEnv, pid: int | None = None) -> None:
        self._address = env.notify_socket
        if self._address.startswith("@"):
            self._address = "\0" + self._address[1:]
        self._sock: socket.socket | None = None
        if self._address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)
        own_pid = os.getpid() if pid is None else pid
        for_us = env.watchdog_pid in (0, own_pid)
        self.watchdog_interval: float | None = (
            env.watchdog_usec / 2 / 1_000_000
            if env.watchdog_usec and for_us and self._sock
            else None
        )
        """Seconds between ``WATCHDOG=1`` pings (half the configured timeout), or None."""

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens."""
        return self._sock is not None

    def send(self, *lines: str) -> None:
        """Send one notification; failures are logged, never raised (systemd's own rule)."""
        if self._sock is None:
            return
        try:
            self._sock.sendto("\n".join(lines).encode(), self._address)
        except OSError as exc:
            log.debug("sd_notify to %r failed: %s", self._address, exc)

    def status(self, text: str) -> None:
        """Tell what the node is doing (shown by ``systemctl status``)."""
        self.send(f"STATUS={text}")

    def ready(self, text: str) -> None:
        """Report that the node serves."""
        self.send("READY=1", f"STATUS={text}", f"MAINPID={os.getpid()}")

    def watchdog(self) -> None:
        """Prove the event loop is alive."""
        self.send("WATCHDOG=1")

    def stopping(self, text: str) -> None:
        """Report that shutdown began."""
        self.send("STOPPING=1", f"STATUS={text}")

    def close(self) -> None:
        """Release the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
