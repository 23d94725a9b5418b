"""What makes a running node a mesh member: its mesh parts and the loops that run them.

:meth:`MeshRuntime.build` makes every part before the listeners serve (so no route ever
finds one missing); :meth:`~MeshRuntime.start` begins gossip, mDNS and the calibration
once both listeners accept (peers' replies must reach us); :meth:`~MeshRuntime.stop`
ends them before the listeners close, :meth:`~MeshRuntime.aclose` closes the connection
pools after. mDNS or calibration failing is logged and never stops the node.
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
from edgecoder.clock import Clock
from edgecoder.config import Config
from edgecoder.errors import EdgeCoderError
from edgecoder.events import EventHub
from edgecoder.inference.calibration import Calibration, calibrate
from edgecoder.inference.executor import LocalExecutor
from edgecoder.ledger.accounts import KeyAccounts
from edgecoder.ledger.book import Ledger
from edgecoder.ledger.checkpoints import CHECKPOINT
from edgecoder.ledger.economy import (
    Economy,
    VouchBook,
    check_checkpoint_record,
    check_head_record,
)
from edgecoder.ledger.heads import HEAD
from edgecoder.ledger.keeper import LedgerKeeper
from edgecoder.mesh.advert import local_advert
from edgecoder.mesh.advert_types import Advert
from edgecoder.mesh.interfaces import LanAddress, advertise_host, lan_addresses, url_for
from edgecoder.mesh.node import MeshNode
from edgecoder.security.identity import NodeIdentity
from edgecoder.security.mesh_guard import MeshGuard
from edgecoder.security.rotation import ROTATION
from edgecoder.storage import tasks as task_store
from edgecoder.storage.database import Database
from edgecoder.tasks.origin import Origin
from edgecoder.tasks.router import Router
from edgecoder.tasks.worker import Worker, WorkerHost

__all__ = ("MeshRuntime",)

log = logging.getLogger(__name__)

_LAG_PROBE_S = 0.1
_LAG_WARN_MS = 1000
_LAG_WARN_EVERY_S = 10.0


def _exchange_bound_s(config: Config) -> float:
    """How long an outgoing mesh request may take: a third of the skew window (10 s by
    default), so a request a busy peer reads late is still inside the window."""
    return min(10.0, config.mesh.skew_ms / 3000)


def _taken(_: object) -> None:
    """What a record check returns once it has taken the record (nothing)."""


class MeshRuntime:
    """Owns one node's mesh parts (membership, origin, worker, router and their
    connection pools) and the loops that run them: gossip, mDNS, calibration."""

    def __init__(
        self,
        *,
        config: Config,
        node: MeshNode,
        origin: Origin,
        worker: Worker,
        router: Router,
        economy: Economy,
        executor: LocalExecutor,
        guard: MeshGuard,
        clients: tuple[MeshClient, ...],
        addresses: list[LanAddress],
        mesh_port: int,
        api_port: int,
    ) -> None:
        self.config = config
        """The configuration the advert is made from (replaced on reload)."""
        self.node = node
        self.origin = origin
        self.worker = worker
        self.router = router
        self.economy = economy
        self.executor = executor
        self.guard = guard
        self.mesh_port = mesh_port
        self.api_port = api_port
        self.calibration: Calibration | None = None
        self._clients = clients
        self._addresses = addresses
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._mdns: Any = None

    @classmethod
    async def build(
        cls,
        *,
        config: Config,
        identity: NodeIdentity,
        clock: Clock,
        database: Database,
        guard: MeshGuard,
        events: EventHub,
        executor: LocalExecutor,
        mesh_port: int,
        api_port: int,
    ) -> MeshRuntime:
        """Make every mesh part, ready to answer peers; nothing is sent until :meth:`start`.

        Tasks and runs a previous process left unfinished are marked interrupted first.
        """
        cfg = config.mesh
        addresses = await asyncio.to_thread(
            lan_addresses, cfg.interfaces, cfg.exclude_interfaces, cfg.ipv6
        )
        url = url_for(advertise_host(cfg.advertise, cfg.bind, addresses), mesh_port)
        now = clock.now_ms()
        interrupted = await database.run(lambda c: task_store.interrupt_unfinished(c, now))
        if interrupted:
            log.warning("tasks: %d task(s) left unfinished by the last run marked interrupted",
                        interrupted)  # fmt: skip
        bound_s = _exchange_bound_s(config)
        timeout_s = max(1.0, 2 * cfg.period_ms / 1000)
        # Small pools: httpcore re-scans its connections and queue on every change, so a big
        # pool behind a lagging loop costs more the more it holds (see docs/tasks.md).
        gossip_client = MeshClient(identity, clock, timeout_s=timeout_s, max_connections=48,
                                   total_s=min(2 * timeout_s, bound_s))  # fmt: skip
        # Streams are watched by the lease, not by a read timeout.
        task_client = MeshClient(identity, clock, timeout_s=5.0, read_timeout_s=3600.0,
                                 max_connections=256, total_s=bound_s)  # fmt: skip
        runtime: MeshRuntime | None = None

        async def advert() -> Advert:
            assert runtime is not None
            return await runtime._advert()

        node = MeshNode(
            identity=identity,
            config=config,
            clock=clock,
            guard=guard,
            url=url,
            addrs=[a.ip for a in addresses],
            api_port=api_port,
            transport=HttpGossipTransport(gossip_client),
            advert_source=advert,
            events=events,
            record_checks={
                HEAD: check_head_record,
                CHECKPOINT: check_checkpoint_record,
                # A rotation spreads like an advert, and is taken as it is checked.
                ROTATION: lambda record: _taken(guard.rotations.accept(record, clock.now_ms())),
            },
        )
        book = VouchBook(config.node.network)
        ledger = Ledger(identity, database, clock, events, vouches=book.lookup,
                        accounts=KeyAccounts(database))  # fmt: skip
        transport = HttpTaskTransport(task_client, node.directory.address)
        economy = Economy(identity=identity, config=config, clock=clock, database=database,
                          events=events, ledger=ledger, book=book, mesh=node,
                          transport=transport)  # fmt: skip
        await economy.open()
        released = await ledger.release_all()
        if released:
            log.info("ledger: released the holds of %d task(s) the last run left", released)
        common: dict[str, Any] = {"identity": identity, "config": config, "clock": clock,
                                  "database": database, "transport": transport,
                                  "events": events}  # fmt: skip
        LedgerKeeper(ledger).attach(events)
        peer_key = guard.peer_key
        origin = Origin(**common, peer_key=peer_key, ledger=ledger)
        host = WorkerHost(
            advert=lambda: node.advert,
            in_flight=lambda: executor.in_flight,
            execute=executor.execute,
            peer_key=peer_key,
        )
        worker = Worker(**common, host=host)
        router = Router(
            config=config,
            node_id=identity.node_id,
            origin=origin,
            peers=node.adverts,
            own_advert=lambda: node.advert,
            in_flight=lambda: executor.in_flight,
            execute=executor.execute,
            suspected=node.suspected,
        )
        runtime = cls(config=config, node=node, origin=origin, worker=worker, router=router,
                      economy=economy, executor=executor, guard=guard,
                      clients=(gossip_client, task_client), addresses=addresses,
                      mesh_port=mesh_port, api_port=api_port)  # fmt: skip
        return runtime

    async def start(self) -> None:
        """Start gossiping (and announcing, and calibrating); the listeners must accept."""
        cfg = self.config.mesh
        node = self.node
        self._tasks.append(asyncio.create_task(node.run(self._stop), name="edgecoder-gossip"))
        self._tasks.append(
            asyncio.create_task(self.economy.run(self._stop), name="edgecoder-economy")
        )
        self._tasks.append(asyncio.create_task(self._watch_loop(), name="edgecoder-loop-lag"))
        await self.origin.start()
        log.info("mesh: gossiping as %s in network %r", node.url, self.config.node.network)
        if cfg.mdns:
            await self._start_mdns(node, self._addresses)
        if cfg.calibrate and self.executor.available:
            self._tasks.append(asyncio.create_task(self._calibrate(node), name="edgecoder-calib"))

    async def _watch_loop(self) -> None:
        """Measure how late the loop wakes up; the load gauge sheds by it."""
        clock, gauge = self.node.clock, self.guard.load
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
            ipv6=self.config.mesh.ipv6,
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
        """This node's capability advert: what it holds itself, never its peers' models."""
        executor, cfg = self.executor, self.config
        models = []
        if executor.available:
            try:
                loaded = {m.name for m in await executor.loaded_models()}
                models = [
                    replace(m, loaded=m.loaded or m.name in loaded)
                    for m in await executor.list_models()
                ]
            except EdgeCoderError as exc:
                log.debug("advert: could not list models: %s", exc)
        return local_advert(
            models=models,
            backend=executor.state.active or "none",
            calibration=self.calibration,
            slots=cfg.tasks.worker_slots,
            queue_depth=executor.in_flight - cfg.inference.slots,
            owner_busy=executor.owner_busy,
            price_pct=cfg.mesh.price_pct,
        )

    async def _calibrate(self, node: MeshNode) -> None:
        executor = self.executor
        try:
            model = self.config.inference.model
            if not model:
                held = await executor.list_models()
                if not held:
                    log.warning("calibration skipped: this node has no model")
                    return
                model = held[0].name
            self.calibration = await calibrate(executor.backend(), model)
        except EdgeCoderError as exc:
            log.warning("calibration skipped: %s", exc)
            return
        cal = self.calibration
        log.info("calibrated %s: prefill %d tok/s, decode %d tok/s",
                 cal.model, cal.prefill_tps, cal.decode_tps)  # fmt: skip
        await node.publish_advert()

    async def stop(self) -> None:
        """Stop taking tasks, announcing and gossiping (running peer tasks are cancelled:
        their origins fail over)."""
        await self.worker.aclose()
        await self.origin.aclose()
        self._stop.set()
        if self._mdns is not None:
            with contextlib.suppress(Exception):
                await self._mdns.close()
        for task in self._tasks:
            if task.get_name() == "edgecoder-calib":
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.economy.close()

    async def aclose(self) -> None:
        """Close the connection pools (after :meth:`stop`, once the listeners are done)."""
        for client in self._clients:
            await client.aclose()
