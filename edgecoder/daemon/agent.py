"""The unified agent's lifecycle: build the node from its config, serve, stop cleanly.

Order of start: bind both listeners and read the passphrase (fail fast, nothing written)
→ data dir → node key → database → backend → every mesh part and the facade, complete →
serve both listeners → start gossip → D-Bus → ``READY=1``. Each part, as it is made,
pushes what undoes it on one exit stack (:class:`~edgecoder.daemon.unwind.Unwind`), so
stopping and a start that fails half way unwind the same way, newest first:
``STOPPING=1`` → D-Bus → control → mesh (gossip, claims; peer runs are cancelled and
their origins fail over) → the listeners stop accepting and let in-flight requests
finish, bounded by ``daemon.shutdown_timeout_s`` → connection pools → save the replay
state → close the backend → close the database. A start that fails before the
listeners accept anything then removes what it wrote to the data dir (the whole dir if
it made it; never what was there before). Every step runs even when an earlier one
fails (a full disk); each failure is logged on one line and the first is raised once
the stop is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable

from edgecoder import __version__
from edgecoder.adapters.transports.mesh_app import build_mesh_app
from edgecoder.adapters.web.client_app import build_client_app
from edgecoder.clock import Clock, SystemClock
from edgecoder.config import Config, SystemdEnv
from edgecoder.control import Control
from edgecoder.daemon.assembly import assemble
from edgecoder.daemon.backends import start_backend
from edgecoder.daemon.dbus_runtime import start_dbus
from edgecoder.daemon.listeners import EmbeddedServer, bind_listener, describe
from edgecoder.daemon.mesh_runtime import MeshRuntime
from edgecoder.daemon.sdnotify import Notifier
from edgecoder.daemon.unwind import Unwind
from edgecoder.errors import EdgeCoderError
from edgecoder.inference.executor import LocalExecutor
from edgecoder.security.mesh_guard import MeshGuard
from edgecoder.services import Services
from edgecoder.speedups import FALLBACK_REASON, USING_EXTENSIONS
from edgecoder.storage.database import Database
from edgecoder.storage.datadir import DataDirSnapshot, prepare_data_dir, snapshot_data_dir
from edgecoder.storage.keystore import load_or_create_identity, read_passphrase
from edgecoder.storage.node_meta import register_start
from edgecoder.storage.replay_state import load_replay_state, save_replay_state

__all__ = ("Agent",)

log = logging.getLogger(__name__)


class Agent:
    """One node: both listeners, its identity, its database, its lifecycle."""

    def __init__(
        self,
        config: Config,
        systemd: SystemdEnv,
        clock: Clock | None = None,
        reload: Callable[[], Config] | None = None,
    ) -> None:
        """``reload`` re-reads the configuration from where ``config`` came from."""
        self.config = config
        self._reload = reload or (lambda: config)
        self.clock = clock or SystemClock()
        self.notifier = Notifier(systemd)
        self._stop = asyncio.Event()
        self.serving = asyncio.Event()
        """Set once the node serves (when it reports ``READY=1``)."""
        self._servers: list[EmbeddedServer] = []
        self._signals = 0
        # Once a listener may have answered, what the data dir holds may have been
        # acknowledged to someone: a failed start no longer removes it.
        self._accepting = False

    def request_stop(self) -> None:
        """Begin a graceful shutdown; a second request skips waiting for requests."""
        self._signals += 1
        if self._signals == 1:
            log.info("shutdown requested")
        else:
            log.warning("second shutdown request: not waiting for in-flight requests")
            for server in self._servers:
                server.force_exit = True
        self._stop.set()

    async def run(self) -> None:
        """Run the node until asked to stop.

        :raises EdgeCoderError: start-up failed (port in use, unusable data dir, bad key...).
        """
        cfg = self.config
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        try:
            await self._run()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            self.notifier.close()
        log.info("node stopped (data dir %s)", cfg.node.data_dir)

    async def _run(self) -> None:
        unwind = Unwind()
        try:
            await self._start_and_serve(unwind)
        finally:
            failure = await unwind.aclose()
        if failure is not None:
            raise failure

    async def _start_and_serve(self, unwind: Unwind) -> None:
        """Make each part of the node, pushing on ``unwind`` what undoes it, then serve
        until asked to stop."""
        cfg = self.config
        self.notifier.status("Binding listeners")
        mesh_sock = bind_listener("mesh", cfg.mesh.bind, cfg.mesh.port)
        unwind.push("closing the mesh socket", _closing(mesh_sock))
        api_sock = bind_listener("api", cfg.api.bind, cfg.api.port)
        unwind.push("closing the api socket", _closing(api_sock))
        # Config that can be refused is read before the data dir is touched.
        passphrase = await asyncio.to_thread(read_passphrase, cfg.identity.passphrase_file)
        before = await asyncio.to_thread(snapshot_data_dir, cfg.node.data_dir)
        unwind.push("removing what the failed start wrote", lambda: self._undo_start(before))
        services, runtime = await self._open(unwind, mesh_sock, api_sock, passphrase)
        await self._serve(unwind, services, runtime, mesh_sock, api_sock)

    async def _undo_start(self, before: DataDirSnapshot) -> None:
        """Remove what a start that failed before serving wrote to the data dir (once a
        listener may have answered, what it holds may have been acknowledged: kept)."""
        if self._accepting:
            return
        removed = await asyncio.to_thread(before.undo)
        if removed:
            log.info("start failed: removed %s", ", ".join(str(p) for p in removed))

    async def _open(
        self,
        unwind: Unwind,
        mesh_sock: socket.socket,
        api_sock: socket.socket,
        passphrase: bytes | None,
    ) -> tuple[Services, MeshRuntime]:
        """Every part of the node, complete, before anything is served."""
        cfg = self.config
        self.notifier.status("Loading node key")
        await asyncio.to_thread(prepare_data_dir, cfg.node.data_dir)
        identity, created = await asyncio.to_thread(
            load_or_create_identity, cfg.node.data_dir, passphrase
        )
        if not created:
            log.info("loaded node key %s", identity.node_id)
        self.notifier.status("Opening database")
        database = await Database.open(cfg.node.data_dir)
        unwind.push("closing the database", database.close)
        starts = await database.run(
            lambda conn: register_start(
                conn, identity.node_id, self.clock.now_ms(), __version__, USING_EXTENSIONS
            )
        )
        if USING_EXTENSIONS:
            log.info("compiled core in use")
        else:
            log.info("pure-Python core in use: %s", FALLBACK_REASON)
        guard = MeshGuard(identity.node_id, cfg.mesh, self.clock)
        saved = await asyncio.to_thread(load_replay_state, cfg.node.data_dir)
        if saved is None:
            guard.verifier.not_before_ms = self.clock.now_ms()
            log.info("no replay state from a clean stop: refusing requests signed before now")
        else:
            guard.verifier.replay.restore(saved, self.clock.now_ms())

        def save() -> None:
            now = self.clock.now_ms()
            save_replay_state(cfg.node.data_dir, guard.verifier.replay.snapshot(now), now)

        unwind.push("saving the replay state", lambda: asyncio.to_thread(save),
                    "; the next start treats this stop as a crash (it refuses requests "
                    "signed before it)")  # fmt: skip
        self.notifier.status("Starting inference backend")
        backend, backend_state = await start_backend(cfg, database, cfg.node.data_dir)
        executor = LocalExecutor(backend, backend_state)
        unwind.push("closing the inference backend", executor.close)
        log.info("inference: %s", backend_state.reason)
        services, runtime = await assemble(
            config=cfg,
            identity=identity,
            clock=self.clock,
            database=database,
            guard=guard,
            executor=executor,
            extensions=USING_EXTENSIONS,
            listeners={"mesh": describe(mesh_sock), "api": describe(api_sock)},
            starts=starts,
            mesh_port=mesh_sock.getsockname()[1],
            api_port=api_sock.getsockname()[1],
        )
        unwind.push("closing the mesh connection pools", runtime.aclose)
        return services, runtime

    async def _serve(
        self,
        unwind: Unwind,
        services: Services,
        runtime: MeshRuntime,
        mesh_sock: socket.socket,
        api_sock: socket.socket,
    ) -> None:
        cfg = self.config
        grace = cfg.daemon.shutdown_timeout_s
        control = Control(services, self._reload)
        await control.restore()
        mesh = EmbeddedServer(build_mesh_app(services), "mesh", grace, cfg.mesh)
        api = EmbeddedServer(build_client_app(services, control), "api", grace, cfg.api)
        self._servers = [mesh, api]
        services.connection_counts = {"mesh": mesh.tracker.counts, "api": api.tracker.counts}
        if self.notifier.watchdog_interval:
            # Pinged until the listeners have drained, however long that takes.
            watchdog = asyncio.create_task(
                self._watchdog(self.notifier.watchdog_interval), name="edgecoder-watchdog"
            )
            unwind.push("stopping the watchdog", lambda: _cancelled(watchdog))
        self._accepting = True
        tasks = [
            asyncio.create_task(mesh.serve(sockets=[mesh_sock]), name="edgecoder-mesh-listener"),
            asyncio.create_task(api.serve(sockets=[api_sock]), name="edgecoder-api-listener"),
        ]

        async def stop_listeners() -> None:
            for server in self._servers:
                server.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)

        unwind.push("stopping the listeners", stop_listeners)
        await self._until_serving(tasks)
        await runtime.start()
        unwind.push("stopping the mesh runtime", runtime.stop)
        unwind.push("closing the control service", control.aclose)
        bus = await start_dbus(control, cfg.daemon.dbus)
        if bus is not None:
            unwind.push("closing the D-Bus service", bus.close)

        async def stopping() -> None:
            self.notifier.stopping("Stopping: finishing in-flight requests")
            services.events.close()  # open event streams end, so the listeners can drain

        unwind.push("announcing the stop", stopping)
        where = f"mesh {services.listeners['mesh']}, api {services.listeners['api']}"
        log.info("node %s serving (%s)", services.node_id, where)
        if cfg.sources:
            log.info("configured by %s", ", ".join(cfg.sources))
        self.notifier.ready(f"Serving node {services.node_id} ({where})")
        self.serving.set()
        stop = asyncio.create_task(self._stop.wait(), name="edgecoder-stop-wait")
        done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        for task in tasks:
            if task in done:
                exc = task.exception() if not task.cancelled() else None
                raise EdgeCoderError(f"{task.get_name()} stopped unexpectedly: {exc!r}")

    async def _until_serving(self, tasks: list[asyncio.Task[None]]) -> None:
        for server, task in zip(self._servers, tasks, strict=True):
            waiter = asyncio.create_task(server.serving.wait())
            done, _ = await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:
                waiter.cancel()
                raise EdgeCoderError(f"{task.get_name()} failed to start")

    async def _watchdog(self, interval: float) -> None:
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)


def _closing(sock: socket.socket) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        sock.close()

    return close


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
