"""``org.edgecoder.Agent1`` on D-Bus (dbus-fast): a thin skin over :class:`Control`.

Bus name ``org.edgecoder.Agent``, object ``/org/edgecoder/Agent``; pull jobs are objects
``/org/edgecoder/Agent/jobs/<n>`` with interface ``org.edgecoder.Agent1.Job``. Errors are
``org.edgecoder.Agent1.Error.{NotFound,InvalidArgument,NotSupported,Unavailable,Failed}``
with the node's own message. The introspection XML is in ``docs/dbus.md``.

``Balance`` (mc) follows the ledger's ``ledger.balance`` event; ``GetLedger()`` is
``GET /admin/ledger``'s document (entries as JSON text).

Signals follow the node's event hub (:mod:`edgecoder.events`), nothing is polled:
``PeerJoined`` when a peer becomes alive, ``PeerLeft`` when it stops being alive (suspect,
dead or forgotten), ``PropertiesChanged``, ``TaskStarted``/``TaskFinished``, and each
job's ``Progress`` with its ``PropertiesChanged``.

This module (no ``from __future__ import annotations``: dbus-fast reads the signatures
from the annotations at class creation) is imported only when D-Bus is on.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from dbus_fast import BusType, DBusError, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import (
    DBusBool,
    DBusDict,
    DBusInt64,
    DBusObjectPath,
    DBusSignature,
    DBusStr,
    DBusUInt32,
    DBusUInt64,
)
from dbus_fast.constants import NameFlag, PropertyAccess, RequestNameReply
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property, dbus_signal

from edgecoder.adapters.control.names import (
    BUS_NAME,
    ERROR_PREFIX,
    INTERFACE,
    JOB_INTERFACE,
    OBJECT_PATH,
)
from edgecoder.control import Control, PullJob
from edgecoder.errors import (
    BackendUnavailableError,
    BadRequestError,
    ConfigError,
    EdgeCoderError,
    ModelNotFoundError,
    UnsupportedError,
)
from edgecoder.events import (
    Event,
    PeerStateChanged,
    PropertiesChanged,
    PullProgress,
    Subscription,
    TaskFinished,
    TaskStarted,
)
from edgecoder.mesh.membership import ALIVE

__all__ = ("BUS_NAME", "ERROR_PREFIX", "INTERFACE", "OBJECT_PATH", "DbusControl")

log = logging.getLogger(__name__)


DictList = Annotated[list[dict[str, Variant]], DBusSignature("aa{sv}")]
T = TypeVar("T")

_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (ModelNotFoundError, "NotFound"),
    (BadRequestError, "InvalidArgument"),
    (ConfigError, "InvalidArgument"),
    (UnsupportedError, "NotSupported"),
    (BackendUnavailableError, "Unavailable"),
)


def _dbus_error(exc: EdgeCoderError) -> DBusError:
    name = next((n for cls, n in _ERRORS if isinstance(exc, cls)), "Failed")
    return DBusError(ERROR_PREFIX + name, str(exc))


async def _call(operation: Awaitable[T]) -> T:
    try:
        return await operation
    except EdgeCoderError as exc:
        raise _dbus_error(exc) from None


def _variant(value: Any) -> Variant | None:
    if isinstance(value, bool):
        return Variant("b", value)
    if isinstance(value, int):
        return Variant("x", value)
    if isinstance(value, float):
        return Variant("d", value)
    if isinstance(value, str):
        return Variant("s", value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return Variant("as", value)
    if value is None:
        return None
    return Variant("s", json.dumps(value, sort_keys=True))  # nested data: as JSON text


def variants(document: dict[str, Any]) -> dict[str, Variant]:
    """A JSON-like dict as ``a{sv}``: scalars and string lists as themselves, nested data as
    JSON text, None left out."""
    out = {}
    for key, value in document.items():
        variant = _variant(value)
        if variant is not None:
            out[key] = variant
    return out


class JobInterface(ServiceInterface):
    """One model pull: its properties and a ``Progress`` signal."""

    def __init__(self, job: PullJob) -> None:
        super().__init__(JOB_INTERFACE)
        self.job = job

    @dbus_property(access=PropertyAccess.READ)
    def Model(self) -> DBusStr:  # noqa: N802 - D-Bus member names
        return self.job.model

    @dbus_property(access=PropertyAccess.READ)
    def State(self) -> DBusStr:  # noqa: N802
        return self.job.state

    @dbus_property(access=PropertyAccess.READ)
    def Status(self) -> DBusStr:  # noqa: N802
        return self.job.status

    @dbus_property(access=PropertyAccess.READ)
    def Completed(self) -> DBusUInt64:  # noqa: N802
        return self.job.completed

    @dbus_property(access=PropertyAccess.READ)
    def Total(self) -> DBusUInt64:  # noqa: N802
        return self.job.total

    @dbus_property(access=PropertyAccess.READ)
    def Percent(self) -> DBusUInt32:  # noqa: N802
        return self.job.percent

    @dbus_property(access=PropertyAccess.READ)
    def Error(self) -> DBusStr:  # noqa: N802
        return self.job.error

    @dbus_signal()
    def Progress(self) -> Annotated[tuple[int, int, int, str], DBusSignature("ttus")]:  # noqa: N802
        return (self.job.completed, self.job.total, self.job.percent, self.job.state)

    def update(self) -> None:
        """Announce the job's progress."""
        job = self.job
        self.Progress()
        self.emit_properties_changed({"State": job.state, "Status": job.status,
                                      "Completed": job.completed, "Total": job.total,
                                      "Percent": job.percent, "Error": job.error})  # fmt: skip


class AgentInterface(ServiceInterface):
    """``org.edgecoder.Agent1``."""

    def __init__(self, control: Control, export_job: Callable[[PullJob], str]) -> None:
        super().__init__(INTERFACE)
        self.control = control
        self._export_job = export_job

    def _prop(self, name: str) -> Any:
        return self.control.properties()[name]

    # -- properties -------------------------------------------------------------------------

    @dbus_property(access=PropertyAccess.READ)
    def NodeId(self) -> DBusStr:  # noqa: N802
        return str(self._prop("NodeId"))

    @dbus_property(access=PropertyAccess.READ)
    def Version(self) -> DBusStr:  # noqa: N802
        return str(self._prop("Version"))

    @dbus_property(access=PropertyAccess.READ)
    def Mode(self) -> DBusStr:  # noqa: N802
        return str(self._prop("Mode"))

    @dbus_property(access=PropertyAccess.READ)
    def Backend(self) -> DBusStr:  # noqa: N802
        return str(self._prop("Backend"))

    @dbus_property(access=PropertyAccess.READ)
    def DefaultModel(self) -> DBusStr:  # noqa: N802
        return str(self._prop("DefaultModel"))

    @dbus_property(access=PropertyAccess.READ)
    def PeerCount(self) -> DBusUInt32:  # noqa: N802
        return int(self._prop("PeerCount"))

    @dbus_property(access=PropertyAccess.READ)
    def OwnerBusy(self) -> DBusBool:  # noqa: N802
        return bool(self._prop("OwnerBusy"))

    @dbus_property(access=PropertyAccess.READ)
    def UsingExtensions(self) -> DBusBool:  # noqa: N802
        return bool(self._prop("UsingExtensions"))

    @dbus_property(access=PropertyAccess.READ)
    def Balance(self) -> DBusInt64:  # noqa: N802
        return int(self._prop("Balance"))

    # -- methods ----------------------------------------------------------------------------

    @dbus_method()
    def GetStatus(self) -> DBusDict:  # noqa: N802
        return variants(self.control.status())

    @dbus_method()
    def ListPeers(self) -> DictList:  # noqa: N802
        return [variants(peer) for peer in self.control.peers()]

    @dbus_method()
    async def GetLedger(self) -> DBusDict:  # noqa: N802
        return variants(await _call(self.control.ledger()))

    @dbus_method()
    async def ListModels(self) -> DictList:  # noqa: N802
        return [variants(m) for m in await _call(self.control.models())]

    @dbus_method()
    def PullModel(self, name: DBusStr) -> DBusObjectPath:  # noqa: N802
        try:
            job = self.control.pull_model(name)
        except EdgeCoderError as exc:
            raise _dbus_error(exc) from None
        return self._export_job(job)

    @dbus_method()
    async def RemoveModel(self, name: DBusStr) -> None:  # noqa: N802
        await _call(self.control.remove_model(name))

    @dbus_method()
    async def SetDefaultModel(self, name: DBusStr) -> None:  # noqa: N802
        await _call(self.control.set_default_model(name))

    @dbus_method()
    async def SetMode(self, mode: DBusStr) -> None:  # noqa: N802
        await _call(self.control.set_mode(mode))

    @dbus_method()
    async def SetOwnerBusy(self, busy: DBusBool) -> None:  # noqa: N802
        await _call(self.control.set_owner_busy(busy))

    @dbus_method()
    async def CreateApiKey(self, name: DBusStr, admin: DBusBool) -> DBusStr:  # noqa: N802
        return await _call(self.control.create_api_key(name, admin))

    @dbus_method()
    async def ListApiKeys(self) -> DictList:  # noqa: N802
        return [variants(k) for k in await _call(self.control.list_api_keys())]

    @dbus_method()
    async def RevokeApiKey(self, name: DBusStr) -> None:  # noqa: N802
        await _call(self.control.revoke_api_key(name))

    @dbus_method()
    async def SetApiKeyBudget(self, name: DBusStr, budget_mc: DBusInt64) -> DBusDict:  # noqa: N802
        # D-Bus has no null: a negative budget means no limit.
        budget = budget_mc if budget_mc >= 0 else None
        return variants(await _call(self.control.set_api_key_budget(name, budget)))

    @dbus_method()
    async def Reload(self) -> DBusDict:  # noqa: N802
        return variants(await _call(self.control.reload()))

    # -- signals ----------------------------------------------------------------------------

    @dbus_signal()
    def PeerJoined(self, node_id: str) -> DBusStr:  # noqa: N802
        return node_id

    @dbus_signal()
    def PeerLeft(self, node_id: str) -> DBusStr:  # noqa: N802
        return node_id

    @dbus_signal()
    def TaskStarted(  # noqa: N802
        self, task_id: str, worker: str
    ) -> Annotated[tuple[str, str], DBusSignature("ss")]:
        return (task_id, worker)

    @dbus_signal()
    def TaskFinished(  # noqa: N802
        self, task_id: str, state: str
    ) -> Annotated[tuple[str, str], DBusSignature("ss")]:
        return (task_id, state)


class DbusControl:
    """The agent's presence on a bus: the exported interface, its jobs, its signals."""

    def __init__(self, control: Control, bus_type: str) -> None:
        self.control = control
        self.bus_type = BusType.SYSTEM if bus_type == "system" else BusType.SESSION
        self.bus: MessageBus | None = None
        self.interface = AgentInterface(control, self._export_job)
        self._jobs: dict[int, JobInterface] = {}
        """Exported jobs still running, by id."""
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        """Connect, export, own ``org.edgecoder.Agent``.

        :raises EdgeCoderError: no bus, or the name cannot be owned (policy, another agent).
        """
        try:
            self.bus = await MessageBus(bus_type=self.bus_type).connect()
        except (OSError, ValueError, DBusError) as exc:
            raise EdgeCoderError(
                f"cannot connect to the {self.bus_type.name.lower()} bus: {exc}"
            ) from None
        self.bus.export(OBJECT_PATH, self.interface)
        try:
            reply = await self.bus.request_name(BUS_NAME, NameFlag.DO_NOT_QUEUE)
        except DBusError as exc:
            self.bus.disconnect()
            raise EdgeCoderError(f"cannot own {BUS_NAME}: {exc.text}") from None
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            self.bus.disconnect()
            raise EdgeCoderError(f"cannot own {BUS_NAME}: another process holds it")
        kinds = (PeerStateChanged.kind, PropertiesChanged.kind, TaskStarted.kind,
                 TaskFinished.kind, PullProgress.kind)  # fmt: skip
        self._subscription = self.control.events.subscribe(self._on_event, kinds)

    def _export_job(self, job: PullJob) -> str:
        path = f"{OBJECT_PATH}/jobs/{job.id}"
        interface = JobInterface(job)
        if self.bus is not None:
            self.bus.export(path, interface)
        if job.state == "running":
            self._jobs[job.id] = interface
        return path

    def _on_event(self, event: Event) -> None:
        interface = self.interface
        if isinstance(event, PeerStateChanged):
            if event.state == ALIVE and event.previous != ALIVE:
                interface.PeerJoined(event.node_id)
            elif event.previous == ALIVE and event.state != ALIVE:
                interface.PeerLeft(event.node_id)
        elif isinstance(event, PropertiesChanged):
            interface.emit_properties_changed(dict(event.changed))
        elif isinstance(event, TaskStarted):
            interface.TaskStarted(event.task_id, event.worker)
        elif isinstance(event, TaskFinished):
            interface.TaskFinished(event.task_id, event.state)
        elif isinstance(event, PullProgress):
            job = self._jobs.get(event.job_id)
            if job is not None:
                job.update()
                if event.state != "running":
                    del self._jobs[event.job_id]

    async def close(self) -> None:
        """Stop following the node's events, release the name and disconnect."""
        if self._subscription is not None:
            self._subscription.close()
        if self.bus is not None:
            self.bus.disconnect()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.bus.wait_for_disconnect(), 2)  # type: ignore[no-untyped-call]
