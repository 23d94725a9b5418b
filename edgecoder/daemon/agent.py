"""The unified agent's lifecycle: build the node from its config, serve, stop cleanly.

Order of start: bind both listeners and read the passphrase (fail fast, nothing written)
→ data dir → node key → database → serve both listeners → ``READY=1``. A start that fails
before the listeners accept anything removes what it wrote to the data dir (the whole
dir if it made it; never what was there before). Order of stop (SIGTERM or SIGINT):
``STOPPING=1`` → stop accepting → let in-flight requests finish, bounded by
``daemon.shutdown_timeout_s`` → close the backend → save the replay state → close the
database. Every stop step runs even when an earlier one fails (a full disk); each failure
is logged on one line and the first is raised once the stop is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from edgecoder import __version__
from edgecoder.access import AccessControl
from edgecoder.adapters.transports.mesh_app import build_mesh_app
from edgecoder.adapters.web.client_app import build_client_app
from edgecoder.clock import Clock, SystemClock
from edgecoder.config import Config, SystemdEnv
from edgecoder.control import Control
from edgecoder.daemon.backends import start_backend
from edgecoder.daemon.dbus_runtime import start_dbus
from edgecoder.daemon.listeners import EmbeddedServer, bind_listener, describe
from edgecoder.daemon.mesh_runtime import MeshRuntime
from edgecoder.daemon.sdnotify import Notifier
from edgecoder.errors import ConfigError, EdgeCoderError
from edgecoder.events import EventHub, TaskFinished, TaskStarted
from edgecoder.inference.backend import Backend
from edgecoder.security.mesh_guard import MeshGuard
from edgecoder.services import Services
from edgecoder.speedups import FALLBACK_REASON, USING_EXTENSIONS
from edgecoder.storage.database import Database
from edgecoder.storage.datadir import DataDirSnapshot, prepare_data_dir, snapshot_data_dir
from edgecoder.storage.keystore import load_or_create_identity
from edgecoder.storage.node_meta import register_start
from edgecoder.storage.replay_state import load_replay_state, save_replay_state

__all__ = ("Agent", "read_passphrase")

log = logging.getLogger(__name__)


def read_passphrase(path: str) -> bytes | None:
    """Read the key passphrase from a file (trailing newline dropped); None if unset.

    :raises ConfigError: the file is set but unreadable or empty.
    """
    if not path:
        return None
    try:
        passphrase = Path(path).read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ConfigError(f"identity.passphrase_file {path}: {exc.strerror or exc}") from None
    if not passphrase:
        raise ConfigError(f"identity.passphrase_file {path} is empty")
    return passphrase


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
        cfg = self.config
        self.notifier.status("Binding listeners")
        mesh_sock = bind_listener("mesh", cfg.mesh.bind, cfg.mesh.port)
        try:
            api_sock = bind_listener("api", cfg.api.bind, cfg.api.port)
        except BaseException:
            mesh_sock.close()
            raise
        try:
            # Config that can be refused is read before the data dir is touched.
            passphrase = await asyncio.to_thread(read_passphrase, cfg.identity.passphrase_file)
            before = await asyncio.to_thread(snapshot_data_dir, cfg.node.data_dir)
        except BaseException:
            mesh_sock.close()
            api_sock.close()
            raise
        try:
            services = await self._open(mesh_sock, api_sock, passphrase)
        except BaseException:
            mesh_sock.close()
            api_sock.close()
            await self._undo_start(before)
            raise
        failed = True
        try:
            await self._serve(services, mesh_sock, api_sock)
            failed = False
        finally:
            mesh_sock.close()
            api_sock.close()
            stop_error = await self._close(services)
            if failed and not self._accepting:
                await self._undo_start(before)
        if stop_error is not None:
            raise stop_error

    async def _undo_start(self, before: DataDirSnapshot) -> None:
        """Remove what a start that failed before serving wrote to the data dir."""
        removed = await asyncio.to_thread(before.undo)
        if removed:
            log.info("start failed: removed %s", ", ".join(str(p) for p in removed))

    async def _close(self, services: Services) -> EdgeCoderError | None:
        """Close the backend, save the replay state, close the database: all three, always.

        :returns: the first failure (each is logged), or None.
        """
        data_dir = self.config.node.data_dir
        backend = services.backend
        guard = services.mesh_guard

        def save() -> None:
            now = self.clock.now_ms()
            save_replay_state(data_dir, guard.verifier.replay.snapshot(now), now)

        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = []
        if backend is not None:
            steps.append(("closing the inference backend", backend.close))
        steps.append(("saving the replay state", lambda: asyncio.to_thread(save)))
        steps.append(("closing the database", services.database.close))
        return await _every_step(steps)

    async def _open(
        self, mesh_sock: socket.socket, api_sock: socket.socket, passphrase: bytes | None
    ) -> Services:
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
        backend: Backend | None = None
        try:
            starts = await database.run(
                lambda conn: register_start(
                    conn, identity.node_id, self.clock.now_ms(), __version__, USING_EXTENSIONS
                )
            )
            if USING_EXTENSIONS:
                log.info("compiled core in use")
            else:
                log.info("pure-Python core in use: %s", FALLBACK_REASON)
            self.notifier.status("Starting inference backend")
            backend, backend_state = await start_backend(cfg, database, cfg.node.data_dir)
            log.info("inference: %s", backend_state.reason)
            access = AccessControl(
                database,
                self.clock,
                rate_per_min=cfg.api.rate_limit_per_min,
                burst=cfg.api.rate_limit_burst,
                auth_failure_burst=cfg.api.auth_failure_burst,
                auth_failures_per_min=cfg.api.auth_failures_per_min,
            )
            guard = MeshGuard(identity.node_id, cfg.mesh, self.clock)
            saved = await asyncio.to_thread(load_replay_state, cfg.node.data_dir)
        except BaseException:
            steps: list[tuple[str, Callable[[], Awaitable[object]]]] = []
            if backend is not None:
                steps.append(("closing the inference backend", backend.close))
            steps.append(("closing the database", database.close))
            await _every_step(steps)  # failures are logged; the start's own error is raised
            raise
        if saved is None:
            guard.verifier.not_before_ms = self.clock.now_ms()
            log.info("no replay state from a clean stop: refusing requests signed before now")
        else:
            guard.verifier.replay.restore(saved, self.clock.now_ms())
        return Services(
            config=cfg,
            identity=identity,
            database=database,
            clock=self.clock,
            access=access,
            mesh_guard=guard,
            extensions=USING_EXTENSIONS,
            backend=backend,
            backend_state=backend_state,
            listeners={"mesh": describe(mesh_sock), "api": describe(api_sock)},
            starts=starts,
            events=EventHub(),
        )

    async def _serve(
        self, services: Services, mesh_sock: socket.socket, api_sock: socket.socket
    ) -> None:
        cfg = self.config
        grace = cfg.daemon.shutdown_timeout_s
        control = Control(services, self._reload)
        await control.restore()
        mesh = EmbeddedServer(build_mesh_app(services), "mesh", grace, cfg.mesh)
        api = EmbeddedServer(build_client_app(services, control), "api", grace, cfg.api)
        self._servers = [mesh, api]
        services.connection_counts = {"mesh": mesh.tracker.counts, "api": api.tracker.counts}
        self._accepting = True
        tasks = [
            asyncio.create_task(mesh.serve(sockets=[mesh_sock]), name="edgecoder-mesh-listener"),
            asyncio.create_task(api.serve(sockets=[api_sock]), name="edgecoder-api-listener"),
        ]
        watchdog: asyncio.Task[None] | None = None
        crashed: list[asyncio.Task[None]] = []
        mesh_runtime = MeshRuntime(services, mesh_sock.getsockname()[1], api_sock.getsockname()[1])
        bus: Any = None
        try:
            await self._until_serving(tasks)
            await mesh_runtime.start()
            if services.origin is not None:
                services.origin.events.append(_task_events(services.events))
            bus = await start_dbus(control, cfg.daemon.dbus)
            where = f"mesh {services.listeners['mesh']}, api {services.listeners['api']}"
            log.info("node %s serving (%s)", services.node_id, where)
            if cfg.sources:
                log.info("configured by %s", ", ".join(cfg.sources))
            self.notifier.ready(f"Serving node {services.node_id} ({where})")
            if self.notifier.watchdog_interval:
                watchdog = asyncio.create_task(
                    self._watchdog(self.notifier.watchdog_interval), name="edgecoder-watchdog"
                )
            stop = asyncio.create_task(self._stop.wait(), name="edgecoder-stop-wait")
            done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            crashed = [t for t in tasks if t in done]
        finally:
            self.notifier.stopping("Stopping: finishing in-flight requests")
            services.events.close()  # open event streams end, so the listeners can drain
            steps: list[tuple[str, Callable[[], Awaitable[object]]]] = []
            if bus is not None:
                steps.append(("closing the D-Bus service", bus.close))
            steps.append(("closing the control service", control.aclose))
            steps.append(("stopping the mesh runtime", mesh_runtime.stop))
            stop_error = await _every_step(steps)
            for server in self._servers:
                server.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
            if watchdog is not None:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
        for task in crashed:
            exc = task.exception() if not task.cancelled() else None
            raise EdgeCoderError(f"{task.get_name()} stopped unexpectedly: {exc!r}")
        if stop_error is not None:
            raise stop_error

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


def _task_events(hub: EventHub) -> Callable[[str, str, str], None]:
    """The origin's ``(kind, task id, detail)`` callback, publishing ``task.started`` and
    ``task.finished`` on ``hub``."""

    def publish(kind: str, task_id: str, detail: str) -> None:
        hub.publish(TaskStarted(task_id, detail) if kind == "started"
                    else TaskFinished(task_id, detail))  # fmt: skip

    return publish


async def _every_step(
    steps: list[tuple[str, Callable[[], Awaitable[object]]]],
) -> EdgeCoderError | None:
    """Run every clean-up step in order, whatever fails; log each failure on one line.

    :returns: the first failure, as an :class:`EdgeCoderError` the CLI prints on one line
        (a foreign exception is wrapped, with the original as ``__cause__``), or None.
    :raises BaseException: a cancellation or interrupt, once every step has run.
    """
    first: EdgeCoderError | None = None
    interrupted: BaseException | None = None
    for what, step in steps:
        try:
            await step()
        except Exception as exc:
            log.error("stop: %s failed: %s%s", what, exc, _CONSEQUENCES.get(what, ""))
            if first is None:
                if isinstance(exc, EdgeCoderError):
                    first = exc
                else:
                    first = EdgeCoderError(f"stop: {what} failed: {exc!r}")
                    first.__cause__ = exc
        except BaseException as exc:  # cancelled: finish the clean-up, then give up
            interrupted = interrupted or exc
    if interrupted is not None:
        raise interrupted
    return first


_CONSEQUENCES = {
    "saving the replay state": "; the next start treats this stop as a crash"
    " (it refuses requests signed before it)",
}
