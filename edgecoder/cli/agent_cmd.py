"""``edgecoder agent``: run this machine's node in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable
from typing import Any

from edgecoder.cli.options import add_config_option, config_from_args
from edgecoder.config import systemd_env
from edgecoder.config.loader import Override
from edgecoder.config.model import BACKENDS, DBUS_BUSES, EVENT_LOOPS, LOG_LEVELS, TASK_MODES

__all__ = ("add_parser", "run")

log = logging.getLogger(__name__)

# flag attribute -> (config keys it sets, flag as the user writes it)
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


def add_parser(commands: Any) -> None:
    """Register ``agent`` and its flags."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "agent", help="run this machine's node (coordinator, worker and inference host)"
    )
    add_config_option(parser)
    parser.add_argument("--data-dir", metavar="DIR", help="where the key and database live")
    parser.add_argument("--mesh-port", metavar="PORT", help="node-to-node listener (4301)")
    parser.add_argument(
        "--api-port", metavar="PORT", help="IDE, browser and script listener (4304)"
    )
    parser.add_argument("--bind", metavar="ADDR", help="address both listeners bind (0.0.0.0)")
    parser.add_argument(
        "--bootstrap", metavar="URL", action="append", help="a peer to contact (repeatable)"
    )
    parser.add_argument("--backend", choices=BACKENDS, help="inference backend (auto)")
    parser.add_argument("--model", metavar="NAME", help="default model")
    parser.add_argument(
        "--no-mdns", dest="mdns", action="store_false", default=None, help="no LAN discovery"
    )
    parser.add_argument(
        "--network", metavar="NAME", help="mesh name that separates meshes on a LAN"
    )
    parser.add_argument(
        "--mode", choices=TASK_MODES, help="mesh (offload when peers serve better) or local-only"
    )
    parser.add_argument(
        "--worker-slots", metavar="N", help="peer tasks run here at once (1; 0 = requester only)"
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="log verbosity (info)")
    parser.add_argument(
        "--dbus", choices=DBUS_BUSES, help="bus for org.edgecoder.Agent (system; none = off)"
    )
    parser.add_argument("--loop", choices=EVENT_LOOPS, help="event loop implementation (uvloop)")
    parser.set_defaults(handler=run)


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
    # Imported here: the daemon pulls in the whole web and mesh stack (a second's import),
    # which the other commands, run at every boot on the appliance, do not need.
    from edgecoder.daemon.agent import Agent
    from edgecoder.daemon.logs import configure_logging

    config = config_from_args(args, _overrides(args))
    systemd = systemd_env()
    configure_logging(config.node.log_level, journal=systemd.journal_stream)
    with asyncio.Runner(loop_factory=_loop_factory(config.daemon.event_loop)) as runner:
        agent = Agent(config, systemd, reload=lambda: config_from_args(args, _overrides(args)))
        runner.run(agent.run())
    return 0
