"""A user-space Ethernet switch over TAP devices that adds latency and loss, like netem.

Used when the kernel has no ``sch_netem`` (this CI machine's kernel lacks it): every frame
between two nodes crosses this switch, which learns MAC addresses, floods unknown and
broadcast/multicast destinations (mDNS), drops each frame with probability ``loss`` and
delivers the rest ``delay_s`` later, in order. A port can be unplugged (``cut``).
"""

from __future__ import annotations

import fcntl
import heapq
import os
import random
import selectors
import struct
import threading
import time

__all__ = ("ImpairingSwitch", "open_tap")

_TUNSETIFF = 0x400454CA
_IFF_TAP = 0x0002
_IFF_NO_PI = 0x1000


def open_tap(name: str) -> int:
    """Create TAP device ``name`` and return its file descriptor (non-blocking)."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TAP | _IFF_NO_PI))
    return fd


class ImpairingSwitch:
    """Forwards frames between TAP file descriptors in a background thread."""

    def __init__(self, fds: list[int], seed: int = 7) -> None:
        self.fds = fds
        self.delay_s = 0.0
        self.loss = 0.0
        self.down: set[int] = set()
        self.groups: list[frozenset[int]] | None = None
        """While set, frames pass only between ports of one group (a partition)."""
        self.frames = 0
        self.dropped = 0
        self.captured: list[bytes] | None = None
        """Every frame the switch receives while not None (see :meth:`capture`)."""
        self._rng = random.Random(seed)
        self._macs: dict[bytes, int] = {}
        self._queue: list[tuple[float, int, int, bytes]] = []
        self._order = 0
        self._stop = threading.Event()
        self._selector = selectors.DefaultSelector()
        for port, fd in enumerate(fds):
            self._selector.register(fd, selectors.EVENT_READ, port)
        self._thread = threading.Thread(target=self._run, name="impairing-switch", daemon=True)
        self._thread.start()

    def impair(self, delay_s: float, loss: float) -> None:
        """Delay every frame by ``delay_s`` and drop a ``loss`` share of them."""
        self.delay_s, self.loss = delay_s, loss

    def capture(self, on: bool) -> list[bytes]:
        """Start recording every frame (``on``), or stop and return what was recorded."""
        frames, self.captured = self.captured or [], [] if on else None
        return frames

    def cut(self, port: int) -> None:
        self.down.add(port)

    def restore(self, port: int) -> None:
        self.down.discard(port)

    def partition(self, groups: list[set[int]] | None) -> None:
        """Split the LAN: frames pass only within each group (None: heal)."""
        self.groups = None if groups is None else [frozenset(g) for g in groups]

    def _apart(self, a: int, b: int) -> bool:
        groups = self.groups
        return groups is not None and not any(a in g and b in g for g in groups)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._selector.close()
        for fd in self.fds:
            os.close(fd)

    def _run(self) -> None:
        while not self._stop.is_set():
            timeout = 0.05
            if self._queue:
                timeout = max(0.0, min(timeout, self._queue[0][0] - time.monotonic()))
            for key, _ in self._selector.select(timeout):
                self._read(key.data)
            now = time.monotonic()
            while self._queue and self._queue[0][0] <= now:
                _, _, port, frame = heapq.heappop(self._queue)
                if port not in self.down:
                    try:
                        os.write(self.fds[port], frame)
                    except OSError:
                        self.dropped += 1

    def _read(self, port: int) -> None:
        while True:
            try:
                frame = os.read(self.fds[port], 65536)
            except BlockingIOError:
                return
            except OSError:
                return
            if len(frame) < 14 or port in self.down:
                continue
            self.frames += 1
            if self.captured is not None:
                self.captured.append(frame)
            destination, source = frame[:6], frame[6:12]
            self._macs[source] = port
            known = self._macs.get(destination)
            flood = destination[0] & 1 or known is None
            targets = [p for p in range(len(self.fds)) if p != port] if flood else [known]
            for target in targets:
                if target is None or target == port or self._apart(port, target):
                    continue
                if self.loss and self._rng.random() < self.loss:
                    self.dropped += 1
                    continue
                self._order += 1
                at = time.monotonic() + self.delay_s
                heapq.heappush(self._queue, (at, self._order, target, frame))
