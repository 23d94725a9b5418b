"""What makes a running node a mesh member: gossip, mDNS discovery, its calibration.

Started once both listeners accept (peers' replies must reach us), stopped before they
close. mDNS or calibration failing is logged and never stops the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from typing import Any

from edgecoder.adapters.transports.gossip_transport import HttpGossipTransport
from edgecoder.adapters.transports.mesh_client import MeshClient
from edgecoder.adapters.transports.task_transport import HttpTaskTransport
from edgecoder.errors import EdgeCoderError
from edgecoder.inference.calibration import Calibration, calibrate
from edgecoder.mesh.advert import local_advert
from edgecoder.mesh.advert_types import Advert
from edgecoder.mesh.interfaces import LanAddress, advertise_host, lan_addresses, url_for
from edgecoder.mesh.node import MeshNode
from edgecoder.services import Services
from edgecoder.storage import tasks as task_store
from edgecoder.tasks.origin import Origin
from edgecoder.tasks.router import Router
from edgecoder.tasks.worker import Worker, WorkerHost

__all__ = ("MeshRuntime",)

log = logging.getLogger(__name__)

_LAG_PROBE_S = 0.1
_LAG_WARN_MS = 1000
_LAG_WARN_EVERY_S = 10.0


class MeshRuntime:
    """Owns the gossip loop, the mDNS announcer and the calibration of one node."""

    def __init__(self, services: Services, mesh_port: int, api_port: int) -> None:
        self.services = services
        self.mesh_port = mesh_port
        self.api_port = api_port
        self.calibration: Calibration | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: MeshClient | None = None
        self._task_client: MeshClient | None = None
        self._mdns: Any = None

    async def start(self) -> None:
        """Start gossiping (and announcing, and calibrating)."""
        services = self.services
        cfg = services.config.mesh
        addresses = await asyncio.to_thread(
            lan_addresses, cfg.interfaces, cfg.exclude_interfaces, cfg.ipv6
        )
        url = url_for(advertise_host(cfg.advertise, cfg.bind, addresses), self.mesh_port)
        timeout_s = max(1.0, 2 * cfg.period_ms / 1000)
        # Small pools: httpcore re-scans its connections and queue on every change, so a big
        # pool behind a lagging loop costs more the more it holds (see docs/tasks.md).
        self._client = MeshClient(services.identity, services.clock, timeout_s=timeout_s,
                                  max_connections=48,
                                  total_s=min(2 * timeout_s, self._exchange_bound_s()))  # fmt: skip
        node = MeshNode(
            identity=services.identity,
            config=services.config,
            clock=services.clock,
            guard=services.mesh_guard,
            url=url,
            addrs=[a.ip for a in addresses],
            api_port=self.api_port,
            transport=HttpGossipTransport(self._client),
            advert_source=self._advert,
            events=services.events,
        )
        services.mesh = node
        await self._start_tasks(node)
        self._tasks.append(asyncio.create_task(node.run(self._stop), name="edgecoder-gossip"))
        self._tasks.append(asyncio.create_task(self._watch_loop(), name="edgecoder-loop-lag"))
        log.info("mesh: gossiping as %s in network %r", url, services.config.node.network)
        if cfg.mdns:
            await self._start_mdns(node, addresses)
        if cfg.calibrate and services.backend is not None:
            self._tasks.append(asyncio.create_task(self._calibrate(node), name="edgecoder-calib"))

    async def _start_tasks(self, node: MeshNode) -> None:
        """The task protocol: origin, worker and router, over their own connection pool."""
        services = self.services
        now = services.clock.now_ms()
        interrupted = await services.database.run(lambda c: task_store.interrupt_unfinished(c, now))
        if interrupted:
            log.warning("tasks: %d task(s) left unfinished by the last run marked interrupted",
                        interrupted)  # fmt: skip
        # Streams are watched by the lease, not by a read timeout.
        self._task_client = MeshClient(services.identity, services.clock, timeout_s=5.0,
                                       read_timeout_s=3600.0, max_connections=256,
                                       total_s=self._exchange_bound_s())  # fmt: skip
        transport = HttpTaskTransport(self._task_client, node.directory.address)
        common = {"identity": services.identity, "config": services.config,
                  "clock": services.clock, "database": services.database,
                  "transport": transport}  # fmt: skip
        services.origin = Origin(**common, peer_key=services.peer_key)  # type: ignore[arg-type]
        host = WorkerHost(
            advert=lambda: node.advert,
            in_flight=lambda: services.in_flight,
            execute=services.execute,
            peer_key=services.peer_key,
        )
        services.worker = Worker(**common, host=host)  # type: ignore[arg-type]
        services.router = Router(
            config=services.config,
            node_id=services.node_id,
            origin=services.origin,
            peers=node.adverts,
            own_advert=lambda: node.advert,
            in_flight=lambda: services.in_flight,
            execute=services.execute,
        )

    def _exchange_bound_s(self) -> float:
        """How long an outgoing mesh request may take: a third of the skew window (10 s by
        default), so a request a busy peer reads late is still inside the window."""
        return min(10.0, self.services.config.mesh.skew_ms / 3000)

    async def _watch_loop(self) -> None:
        """Measure how late the loop wakes up; the load gauge sheds by it."""
        clock, gauge = self.services.clock, self.services.mesh_guard.load
        warned = -_LAG_WARN_EVERY_S
        while not self._stop.is_set():
            started = clock.monotonic()
            await asyncio.sleep(_LAG_PROBE_S)
            now = clock.monotonic()
            lag_ms = max(0.0, (now - started - _LAG_PROBE_S) * 1000)
            gauge.observe_lag(lag_ms, now)
            if lag_ms >= _LAG_WARN_MS and now - warned >= _LAG_WARN_EVERY_S:
                warned = now
                log.warning("the event loop is %d ms behind (%d mesh requests in progress, shed "
                            "so far: %s)", lag_ms, gauge.in_flight, dict(gauge.shed))  # fmt: skip

    async def _start_mdns(self, node: MeshNode, addresses: list[LanAddress]) -> None:
        from edgecoder.adapters.discovery.mdns import MdnsDiscovery

        mdns = MdnsDiscovery(
            node_id=node.node_id,
            network=node.network,
            mesh_port=self.mesh_port,
            api_port=self.api_port,
            addresses=addresses,
            ipv6=self.services.config.mesh.ipv6,
            on_found=node.add_seeds,
        )
        try:
            await mdns.start()
        except (OSError, EdgeCoderError, RuntimeError) as exc:
            log.error("mDNS could not start (%s); relying on mesh.bootstrap", exc)
            with contextlib.suppress(Exception):
                await mdns.close()
            return
        self._mdns = mdns

    async def _advert(self) -> Advert:
        services = self.services
        models = []
        if services.backend is not None:
            try:
                loaded = {m.name for m in await services.loaded_models()}
                models = [
                    replace(m, loaded=m.loaded or m.name in loaded)
                    for m in await services.list_models()
                ]
            except EdgeCoderError as exc:
                log.debug("advert: could not list models: %s", exc)
        return local_advert(
            models=models,
            backend=services.backend_state.active or "none",
            calibration=self.calibration,
            slots=services.config.tasks.worker_slots,
            queue_depth=services.in_flight - services.config.inference.slots,
            owner_busy=services.owner_busy,
            price_pct=services.config.mesh.price_pct,
        )

    async def _calibrate(self, node: MeshNode) -> None:
        services = self.services
        backend = services.backend
        if backend is None:
            return
        try:
            model = await services.default_model()
            self.calibration = await calibrate(backend, model)
        except EdgeCoderError as exc:
            log.warning("calibration skipped: %s", exc)
            return
        cal = self.calibration
        log.info("calibrated %s: prefill %d tok/s, decode %d tok/s",
                 cal.model, cal.prefill_tps, cal.decode_tps)  # fmt: skip
        await node.publish_advert()

    async def stop(self) -> None:
        """Stop taking tasks, announcing and gossiping."""
        services = self.services
        services.router = None
        if services.worker is not None:
            await services.worker.aclose()
        if services.origin is not None:
            await services.origin.aclose()
        self._stop.set()
        if self._mdns is not None:
            with contextlib.suppress(Exception):
                await self._mdns.close()
        for task in self._tasks:
            if task.get_name() == "edgecoder-calib":
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in (self._client, self._task_client):
            if client is not None:
                await client.aclose()
