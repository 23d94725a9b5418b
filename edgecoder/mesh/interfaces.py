"""Which network interfaces the mesh uses: real LAN interfaces by default.

Loopback, container, bridge and VPN interfaces (``mesh.exclude_interfaces``, shell-style
patterns) are skipped unless ``mesh.interfaces`` names them; a non-empty
``mesh.interfaces`` uses exactly the interfaces it matches.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from fnmatch import fnmatchcase

import ifaddr

__all__ = ("LanAddress", "advertise_host", "lan_addresses", "select", "url_for")


@dataclass(frozen=True, slots=True)
class LanAddress:
    """One address of one interface."""

    interface: str
    ip: str
    version: int
    scope_id: int = 0
    """The interface index of an IPv6 link-local address (0 otherwise)."""

    @property
    def link_local(self) -> bool:
        """Whether the address is only valid on its own link."""
        return ipaddress.ip_address(self.ip).is_link_local


def select(name: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    """Whether interface ``name`` is used."""
    if include:
        return any(fnmatchcase(name, pattern) for pattern in include)
    return not any(fnmatchcase(name, pattern) for pattern in exclude)


def lan_addresses(
    include: tuple[str, ...], exclude: tuple[str, ...], ipv6: bool
) -> list[LanAddress]:
    """The addresses of every selected interface, IPv4 first."""
    found: list[LanAddress] = []
    for adapter in ifaddr.get_adapters():
        if not select(adapter.nice_name, include, exclude):
            continue
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                found.append(LanAddress(adapter.nice_name, ip.ip, 4))
            elif ipv6:
                address, _flow, scope = ip.ip
                found.append(LanAddress(adapter.nice_name, address, 6, scope))
    return sorted(found, key=lambda a: (a.version, a.link_local))


def advertise_host(configured: str, bind: str, addresses: list[LanAddress]) -> str:
    """The host peers should use to reach this node's mesh listener.

    ``mesh.advertise`` when set; else the bind address when it is a specific one; else the
    first routable LAN address; else loopback (a node alone on this machine).
    """
    if configured:
        return configured
    if bind not in {"0.0.0.0", "::"}:  # noqa: S104
        return bind
    usable = [a for a in addresses if not a.link_local]
    return usable[0].ip if usable else "127.0.0.1"


def url_for(host: str, port: int) -> str:
    """``http://host:port``, with IPv6 hosts in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
