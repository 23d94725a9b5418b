"""``edgecoderctl``'s session with the agent over D-Bus, and its failures as exit codes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from dbus_fast import BusType, DBusError
from dbus_fast.aio import MessageBus

from edgecoder.adapters.control.names import BUS_NAME, INTERFACE, JOB_INTERFACE, OBJECT_PATH

__all__ = ("Agent", "CtlError", "run")


class CtlError(Exception):
    """A failure to report on stderr with an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _plain(value: Any) -> Any:
    """dbus-fast values (Variants inside dicts and lists) as plain Python data."""
    inner = getattr(value, "value", value)
    if isinstance(inner, dict):
        return {k: _plain(v) for k, v in inner.items()}
    if isinstance(inner, list):
        return [_plain(v) for v in inner]
    return inner


class Agent:
    """A connection to the agent's interface."""

    def __init__(self, session: bool) -> None:
        self.session = session
        self.bus: Any = None
        self.iface: Any = None

    async def __aenter__(self) -> Agent:
        kind = "session" if self.session else "system"
        bus_type = BusType.SESSION if self.session else BusType.SYSTEM
        try:
            self.bus = await MessageBus(bus_type=bus_type).connect()
        except (OSError, ValueError) as exc:
            raise CtlError(f"cannot reach the {kind} bus: {exc}", 3) from None
        try:
            node = await self.bus.introspect(BUS_NAME, OBJECT_PATH)
        except Exception as exc:
            raise _translate(exc, kind) from None
        self.iface = self.bus.get_proxy_object(BUS_NAME, OBJECT_PATH, node).get_interface(INTERFACE)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.bus is not None:
            self.bus.disconnect()

    async def call(self, member: str, *args: Any) -> Any:
        """Call a method (``GetStatus``, ``SetMode``...) and return plain data."""
        name = "call_" + "".join("_" + c.lower() if c.isupper() else c for c in member).lstrip("_")
        try:
            return _plain(await getattr(self.iface, name)(*args))
        except Exception as exc:
            raise _translate(exc, "session" if self.session else "system") from None

    async def job(self, path: str) -> Any:
        """The proxy of a pull job's interface."""
        node = await self.bus.introspect(BUS_NAME, path)
        return self.bus.get_proxy_object(BUS_NAME, path, node).get_interface(JOB_INTERFACE)


def _translate(exc: Exception, kind: str) -> CtlError:
    if not isinstance(exc, DBusError):
        return CtlError(f"D-Bus call failed: {exc}", 1)
    if exc.type in ("org.freedesktop.DBus.Error.ServiceUnknown",
                    "org.freedesktop.DBus.Error.NameHasNoOwner"):  # fmt: skip
        return CtlError(f"the EdgeCoder agent is not running (no {BUS_NAME} on the {kind} bus)", 3)
    if exc.type == "org.freedesktop.DBus.Error.AccessDenied":
        return CtlError(
            f"permission denied by the {kind} bus policy: run as root or as a member of the "
            "edgecoder group",
            4,
        )
    return CtlError(exc.text or exc.type, 1)


async def _session(args: argparse.Namespace) -> None:
    action = args.action.resolve()
    async with Agent(args.session) as agent:
        await action(agent, args)


def run(args: argparse.Namespace) -> int:
    """Connect, run the command's action (``args.action``), disconnect; the exit code."""
    try:
        asyncio.run(_session(args))
    except CtlError as exc:
        print(f"edgecoderctl: {exc}", file=sys.stderr)
        return exc.code
    return 0
