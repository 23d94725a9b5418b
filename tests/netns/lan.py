"""A throw-away LAN of network namespaces: one bridge, one namespace and IP per node.

Layout (``tag`` keeps concurrent runs apart): namespace ``ec<tag>sw`` holds bridge ``br0``
(multicast snooping off, so mDNS floods like on a dumb switch); node *i* lives in
namespace ``ec<tag>n<i>`` with interface ``eth0`` = 10.77.<net>.<i+1>/24, its peer end
``p<i>`` plugged into the bridge. The test's own namespace joins the LAN at .254 so it can
call the agents directly. Everything is removed by :meth:`Lan.close`.
"""

from __future__ import annotations

import os
import shutil
import subprocess

__all__ = ("Lan", "netns_available")


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


class Lan:
    """Namespaces, veth pairs and a bridge, created on construction."""

    def __init__(self, nodes: int) -> None:
        self.tag = f"{os.getpid() % 10000:04d}"
        self.net = 10 + os.getpid() % 200
        self.switch = f"ec{self.tag}sw"
        self.host_if = f"ech{self.tag}"
        self.namespaces = [f"ec{self.tag}n{i}" for i in range(nodes)]
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
            self.run(i, "ip", "link", "set", "lo", "up")
            self.run(i, "ip", "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            self.run(i, "ip", "link", "set", "eth0", "up")
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", f"ecq{self.tag}")
        _ip("link", "set", f"ecq{self.tag}", "netns", self.switch, "name", "host")
        self.sw("ip", "link", "set", "host", "master", "br0", "up")
        _ip("addr", "add", f"10.77.{self.net}.254/24", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")

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
        self.sw("ip", "link", "set", f"p{i}", "down")

    def restore(self, i: int) -> None:
        """Plug node *i* back in."""
        self.sw("ip", "link", "set", f"p{i}", "up")

    def netem(self, spec: list[str]) -> None:
        """Apply ``tc netem`` (e.g. ``["delay", "100ms", "loss", "5%"]``) on every node."""
        for i in range(len(self.namespaces)):
            self.run(i, "tc", "qdisc", "replace", "dev", "eth0", "root", "netem", *spec)

    def close(self) -> None:
        """Remove every namespace and interface this LAN made."""
        _ip("link", "del", self.host_if, check=False)
        for ns in [*self.namespaces, self.switch]:
            _ip("netns", "del", ns, check=False)
