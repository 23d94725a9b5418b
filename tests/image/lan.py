"""A throw-away office LAN for booted images: a bridge with DHCP in its own network namespace.

Each guest gets a TAP port on the bridge (multicast snooping off, so mDNS floods as on a
dumb switch) and an address from dnsmasq, the way a box gets one in an office. Nothing
outside the namespace is touched; :meth:`ImageLan.close` removes it all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import BinaryIO

__all__ = ("ImageLan", "lan_unavailable")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], capture_output=True, text=True, check=True)


def lan_unavailable() -> str | None:
    """None when this machine can build the LAN, else why not."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, TAP devices)"
    if not Path("/dev/net/tun").exists():
        return "needs /dev/net/tun"
    if shutil.which("dnsmasq") is None:
        return "needs dnsmasq (make image-deps installs dnsmasq-base)"
    return None


class ImageLan:
    """Namespace ``ecimg<pid>`` with bridge ``br0`` at 10.78.0.1/24, DHCP from dnsmasq."""

    def __init__(self, workdir: Path, ports: int) -> None:
        self.namespace = f"ecimg{os.getpid() % 100000}"
        self.taps = [f"tap{i}" for i in range(ports)]
        self._dnsmasq: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None
        _ip("netns", "add", self.namespace)
        try:
            self._ns("link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
            self._ns("addr", "add", "10.78.0.1/24", "dev", "br0")
            for tap in self.taps:
                self._ns("tuntap", "add", "dev", tap, "mode", "tap")
                self._ns("link", "set", tap, "master", "br0", "up")
            self._ns("link", "set", "br0", "up")
            self._ns("link", "set", "lo", "up")
            self._log = (workdir / "dnsmasq.log").open("wb")
            self._dnsmasq = subprocess.Popen(
                [*self.prefix, "dnsmasq", "--keep-in-foreground", "--port=0",
                 "--interface=br0", "--bind-interfaces", "--no-resolv", "--no-hosts",
                 "--dhcp-range=10.78.0.10,10.78.0.99,1h", "--dhcp-authoritative",
                 f"--dhcp-leasefile={workdir / 'leases'}", "--pid-file="],
                stdout=subprocess.DEVNULL, stderr=self._log,
            )  # fmt: skip
        except BaseException:
            self.close()
            raise

    @property
    def prefix(self) -> list[str]:
        """Run a command inside the LAN's namespace."""
        return ["ip", "netns", "exec", self.namespace]

    def netdev(self, index: int) -> list[str]:
        """QEMU arguments plugging a guest into port ``index`` (each with its own MAC)."""
        mac = f"52:54:00:ec:00:{index + 1:02x}"
        return [
            "-netdev", f"tap,id=lan,ifname={self.taps[index]},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=lan,mac={mac}",
        ]  # fmt: skip

    def _ns(self, *args: str) -> None:
        _ip("-n", self.namespace, *args)

    def close(self) -> None:
        if self._dnsmasq is not None:
            self._dnsmasq.terminate()
            self._dnsmasq.wait(timeout=10)
            self._dnsmasq = None
        if self._log is not None:
            self._log.close()
            self._log = None
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True, check=False)
