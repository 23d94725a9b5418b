"""A throw-away LAN of network namespaces: one switch, one namespace and IP per node.

Node *i* lives in namespace ``ec<tag>n<i>`` with interface ``eth0`` = 10.77.<net>.<i+1>/24
(``tag`` keeps concurrent runs apart); the test's own namespace joins the LAN at .254 so it
can call the agents directly. Everything is removed by :meth:`Lan.close`.

The switch is a kernel bridge (multicast snooping off, so mDNS floods like on a dumb
switch) in namespace ``ec<tag>sw``, with veth pairs, and impairment by ``tc netem`` on each
node's ``eth0`` — when the kernel has ``sch_netem``. Kernels without it (this project's CI
machine) get TAP devices and :class:`ImpairingSwitch`, a user-space switch that adds the
same per-hop delay and loss; :attr:`Lan.switch_kind` says which one a run used.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from tests.netns.impairing_switch import ImpairingSwitch, open_tap

__all__ = ("Lan", "netem_available", "netns_available")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def netns_available() -> str | None:
    """None when namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "needs root"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "needs iproute2 (ip, tc)"
    probe = f"ecprobe{os.getpid() % 100000}"
    result = _ip("netns", "add", probe, check=False)
    if result.returncode != 0:
        return f"cannot create network namespaces: {result.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def netem_available() -> bool:
    """Whether this kernel has the ``netem`` queueing discipline."""
    probe = f"ecnetem{os.getpid() % 100000}"
    _ip("netns", "add", probe)
    try:
        _ip("-n", probe, "link", "add", "ea", "type", "veth", "peer", "name", "eb")
        result = subprocess.run(["ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "ea",
                                 "root", "netem", "delay", "1ms"], capture_output=True)  # fmt: skip
        return result.returncode == 0
    finally:
        _ip("netns", "del", probe, check=False)


class Lan:
    """Namespaces on one switch, created on construction."""

    made = 0

    def __init__(self, nodes: int) -> None:
        Lan.made += 1
        self.tag = f"{os.getpid() % 1000:03d}{Lan.made % 10}"
        self.net = 10 + (os.getpid() + Lan.made) % 200
        self.switch = f"ec{self.tag}sw"
        self.host_if = f"ech{self.tag}"
        self.namespaces = [f"ec{self.tag}n{i}" for i in range(nodes)]
        self.userspace: ImpairingSwitch | None = None
        self.switch_kind = "bridge+netem" if netem_available() else "tap+user-space switch"
        if self.userspace_needed:
            self._build_taps()
        else:
            self._build_bridge()
        _ip("addr", "add", f"10.77.{self.net}.254/24", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")

    @property
    def userspace_needed(self) -> bool:
        return self.switch_kind != "bridge+netem"

    def _build_taps(self) -> None:
        fds = []
        for i, ns in enumerate(self.namespaces):
            _ip("netns", "add", ns)
            fds.append(open_tap(f"ect{self.tag}{i}"))
            _ip("link", "set", f"ect{self.tag}{i}", "netns", ns, "name", "eth0")
            self._configure(i)
        fds.append(open_tap(self.host_if))
        self.userspace = ImpairingSwitch(fds)

    def _configure(self, i: int) -> None:
        self.run(i, "ip", "link", "set", "lo", "up")
        self.run(i, "ip", "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
        self.run(i, "ip", "link", "set", "eth0", "up")

    def _build_bridge(self) -> None:
        _ip("netns", "add", self.switch)
        self.sw("ip", "link", "set", "lo", "up")
        self.sw("ip", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        self.sw("ip", "link", "set", "br0", "up")
        for i, ns in enumerate(self.namespaces):
            _ip("netns", "add", ns)
            _ip("link", "add", f"ecv{self.tag}{i}", "type", "veth", "peer", "name",
                f"ecp{self.tag}{i}")  # fmt: skip
            _ip("link", "set", f"ecv{self.tag}{i}", "netns", ns, "name", "eth0")
            _ip("link", "set", f"ecp{self.tag}{i}", "netns", self.switch, "name", f"p{i}")
            self.sw("ip", "link", "set", f"p{i}", "master", "br0", "up")
            self._configure(i)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", f"ecq{self.tag}")
        _ip("link", "set", f"ecq{self.tag}", "netns", self.switch, "name", "host")
        self.sw("ip", "link", "set", "host", "master", "br0", "up")

    def address(self, i: int) -> str:
        """Node *i*'s IP."""
        return f"10.77.{self.net}.{i + 1}"

    def prefix(self, i: int) -> tuple[str, ...]:
        """The command prefix that runs a program in node *i*'s namespace."""
        return ("ip", "netns", "exec", self.namespaces[i])

    def run(self, i: int, *command: str) -> None:
        subprocess.run([*self.prefix(i), *command], check=True, capture_output=True)

    def sw(self, *command: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.switch, *command], check=True,
                       capture_output=True)  # fmt: skip

    def cut(self, i: int) -> None:
        """Unplug node *i* from the switch."""
        if self.userspace is not None:
            self.userspace.cut(i)
        else:
            self.sw("ip", "link", "set", f"p{i}", "down")

    def restore(self, i: int) -> None:
        """Plug node *i* back in."""
        if self.userspace is not None:
            self.userspace.restore(i)
        else:
            self.sw("ip", "link", "set", f"p{i}", "up")

    def partition(self, groups: list[set[int]] | None) -> None:
        """Split the LAN into ``groups`` of nodes (the test host reaches every node);
        None heals it. Needs the user-space switch."""
        if self.userspace is None:
            raise NotImplementedError("partitions need the user-space switch")
        host = len(self.namespaces)
        self.userspace.partition(None if groups is None else [g | {host} for g in groups])

    def impair(self, delay_ms: int, loss_pct: int) -> None:
        """Add ``delay_ms`` and ``loss_pct`` % loss to every frame a node sends."""
        if self.userspace is not None:
            self.userspace.impair(delay_ms / 1000, loss_pct / 100)
            return
        spec = ["delay", f"{delay_ms}ms", "loss", f"{loss_pct}%"]
        for i in range(len(self.namespaces)):
            self.run(i, "tc", "qdisc", "replace", "dev", "eth0", "root", "netem", *spec)

    def capture(self, on: bool) -> list[bytes]:
        """Record every Ethernet frame on the LAN (``on``), or stop and return them.

        Only the user-space switch sees every frame; on the kernel bridge this raises.
        """
        if self.userspace is None:
            raise NotImplementedError("frame capture needs the user-space switch")
        return self.userspace.capture(on)

    def close(self) -> None:
        """Remove every namespace and interface this LAN made."""
        if self.userspace is not None:
            self.userspace.close()
        _ip("link", "del", self.host_if, check=False)
        for ns in [*self.namespaces, self.switch]:
            _ip("netns", "del", ns, check=False)
