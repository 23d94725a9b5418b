"""Putting the agent on D-Bus (``daemon.dbus``): optional, and never fatal.

dbus-fast is imported only here and only when D-Bus is on; a missing package, a missing
bus or a policy that refuses the name is logged as an error with what to do, and the
node runs on without its D-Bus interface (its HTTP admin routes offer the same).
"""

from __future__ import annotations

import logging
from typing import Any

from edgecoder.control import Control
from edgecoder.errors import EdgeCoderError

__all__ = ("start_dbus",)

log = logging.getLogger(__name__)


async def start_dbus(control: Control, bus: str) -> Any:
    """The started D-Bus presence on ``bus`` (``system``/``session``), or None."""
    if bus == "none":
        return None
    try:
        from edgecoder.adapters.control.dbus_service import BUS_NAME, DbusControl
    except ImportError as exc:
        log.warning("D-Bus is off: dbus-fast is not installed (%s)", exc)
        return None
    presence = DbusControl(control, bus)
    try:
        await presence.start()
    except EdgeCoderError as exc:
        hint = (
            "install systemd/org.edgecoder.Agent.conf and run as the edgecoder user"
            if bus == "system"
            else "is a session bus running (DBUS_SESSION_BUS_ADDRESS)?"
        )
        log.warning('D-Bus is off: %s; %s (or set daemon.dbus = "none")', exc, hint)
        return None
    log.info("D-Bus: %s on the %s bus", BUS_NAME, bus)
    return presence
