"""LAN discovery with mDNS/DNS-SD (python-zeroconf).

Each node registers ``<node id>._edgecoder._tcp.local.`` on the selected interfaces, with
TXT records ``id`` (node id), ``net`` (network name), ``mesh`` and ``api`` (ports) and
``v`` (discovery version), and browses for the others. A node found in the same network
is handed to the mesh as a seed URL (IPv4 preferred, then a routable IPv6 address); what
it really is, is then settled by signed gossip, never by mDNS alone. A registration that
collides with an existing name means another node on the LAN announces this node's id:
it is logged and the gossip layer decides which one is the copy.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable

from zeroconf import IPVersion, NonUniqueNameException, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from edgecoder.mesh.interfaces import LanAddress, url_for

__all__ = ("SERVICE", "MdnsDiscovery")

log = logging.getLogger(__name__)

SERVICE = "_edgecoder._tcp.local."
_RESOLVE_MS = 3000


class MdnsDiscovery:
    """Announces this node and reports the mesh URLs of others in the same network."""

    def __init__(
        self,
        *,
        node_id: str,
        network: str,
        mesh_port: int,
        api_port: int,
        addresses: list[LanAddress],
        ipv6: bool,
        on_found: Callable[[list[str]], None],
    ) -> None:
        self.node_id = node_id
        self.network = network
        self.mesh_port = mesh_port
        self.api_port = api_port
        self.addresses = addresses
        self.ipv6 = ipv6
        self.on_found = on_found
        self.found: dict[str, str] = {}
        self._zeroconf: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Register and start browsing; nothing happens without a usable interface."""
        if not self.addresses:
            log.warning("mDNS: no LAN interface selected; discovery is off (see mesh.interfaces)")
            return
        # IPv4 by address; IPv6 by one address per interface (zeroconf maps it to an index).
        interfaces = [a.ip for a in self.addresses if a.version == 4]
        v6_interfaces = {a.interface: a.ip for a in self.addresses if a.version == 6}
        interfaces += list(v6_interfaces.values()) if self.ipv6 else []
        version = IPVersion.All if self.ipv6 and v6_interfaces else IPVersion.V4Only
        self._zeroconf = AsyncZeroconf(interfaces=interfaces, ip_version=version)
        info = AsyncServiceInfo(
            SERVICE,
            f"{self.node_id}.{SERVICE}",
            port=self.mesh_port,
            properties={
                "id": self.node_id,
                "net": self.network,
                "mesh": str(self.mesh_port),
                "api": str(self.api_port),
                "v": "1",
            },
            server=f"edgecoder-{self.node_id}.local.",
            parsed_addresses=[a.ip for a in self.addresses if not a.link_local or a.version == 4],
        )
        try:
            await self._zeroconf.async_register_service(info)
        except NonUniqueNameException:
            log.error(
                "mDNS: another node on this LAN already announces node id %s "
                "(a copied data directory?); announcing under a changed name",
                self.node_id,
            )
            await self._zeroconf.async_register_service(info, allow_name_change=True)
        self._browser = AsyncServiceBrowser(
            self._zeroconf.zeroconf, SERVICE, handlers=[self._on_change]
        )
        names = sorted({a.interface for a in self.addresses})
        log.info("mDNS: announcing %s on %s", SERVICE, ", ".join(names))

    async def close(self) -> None:
        """Unregister and stop browsing."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._browser is not None:
            await self._browser.async_cancel()
        if self._zeroconf is not None:
            await self._zeroconf.async_unregister_all_services()
            await self._zeroconf.async_close()

    def _on_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            task = asyncio.get_running_loop().create_task(self._resolve(service_type, name))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _resolve(self, service_type: str, name: str) -> None:
        if self._zeroconf is None:
            return
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(self._zeroconf.zeroconf, _RESOLVE_MS):
            return
        props = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
        if props.get("net") != self.network or not props.get("mesh", "").isdigit():
            return
        url = _best_url(info.parsed_scoped_addresses(), int(props["mesh"]))
        if url is None:
            return
        if props.get("id") == self.node_id and url in self.own_urls():
            return
        if self.found.get(name) != url:
            self.found[name] = url
            log.info("mDNS: found node %s at %s", props.get("id", "?"), url)
            self.on_found([url])

    def own_urls(self) -> set[str]:
        """This node's own mesh URLs (not seeds)."""
        return {url_for(a.ip, self.mesh_port) for a in self.addresses}


def _best_url(addresses: list[str], port: int) -> str | None:
    v4 = [a for a in addresses if ":" not in a]
    v6 = [
        a for a in addresses if ":" in a and not ipaddress.ip_address(a.split("%")[0]).is_link_local
    ]
    chosen = v4 or v6
    return url_for(chosen[0], port) if chosen else None
