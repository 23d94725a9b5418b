"""``edgecoder agent``: run this machine's node in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable

from edgecoder.cli.options import config_from_args
from edgecoder.config import systemd_env
from edgecoder.config.loader import Override
from edgecoder.daemon.agent import Agent
from edgecoder.daemon.logs import configure_logging

__all__ = ("run",)

log = logging.getLogger(__name__)

# flag attribute (edgecoder.cli.parser) -> (config keys it sets, flag as the user writes it)
_FLAG_KEYS: dict[str, tuple[tuple[str, ...], str]] = {
    "mesh_port": (("mesh.port",), "--mesh-port"),
    "api_port": (("api.port",), "--api-port"),
    "bind": (("mesh.bind", "api.bind"), "--bind"),
    "bootstrap": (("mesh.bootstrap",), "--bootstrap"),
    "backend": (("inference.backend",), "--backend"),
    "model": (("inference.model",), "--model"),
    "mdns": (("mesh.mdns",), "--no-mdns"),
    "log_level": (("node.log_level",), "--log-level"),
    "network": (("node.network",), "--network"),
    "loop": (("daemon.event_loop",), "--loop"),
    "dbus": (("daemon.dbus",), "--dbus"),
    "mode": (("tasks.mode",), "--mode"),
    "worker_slots": (("tasks.worker_slots",), "--worker-slots"),
}


def _overrides(args: argparse.Namespace) -> list[Override]:
    overrides: list[Override] = []
    for attr, (keys, flag) in _FLAG_KEYS.items():
        value = getattr(args, attr)
        if value is not None:
            overrides.extend((key, value, flag) for key in keys)
    return overrides


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.warning("uvloop is not installed; using the asyncio event loop")
            return None
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return None


def run(args: argparse.Namespace) -> int:
    """Run the node until SIGTERM or SIGINT; 0 after a clean stop.

    :raises EdgeCoderError: configuration or start-up failed.
    """
    config = config_from_args(args, _overrides(args))
    systemd = systemd_env()
    configure_logging(config.node.log_level, journal=systemd.journal_stream)
    with asyncio.Runner(loop_factory=_loop_factory(config.daemon.event_loop)) as runner:
        agent = Agent(config, systemd, reload=lambda: config_from_args(args, _overrides(args)))
        runner.run(agent.run())
    return 0
