"""``edgecoder status``: ask the local node how it is, or say plainly that none runs."""

from __future__ import annotations

import argparse
import json
from typing import Any

import httpx

from edgecoder.cli.options import add_config_option, config_from_args
from edgecoder.errors import EdgeCoderError, NodeNotRunningError

__all__ = ("add_parser", "local_url", "run")

_LOCAL = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104


def add_parser(commands: Any) -> None:
    """Register ``status``."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "status", help="show the state of the node running on this machine"
    )
    add_config_option(parser)
    parser.add_argument("--url", help="the node's client listener (default: from the config)")
    parser.add_argument("--json", action="store_true", help="print the raw health document")
    parser.set_defaults(handler=run)


def local_url(bind: str, port: int) -> str:
    """The URL that reaches a listener bound to ``bind:port`` from this machine."""
    host = _LOCAL.get(bind, bind)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours or days else []
    parts += [f"{minutes}m", f"{secs}s"] if minutes or parts else [f"{secs}s"]
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    """Print the node's health; exit 3 when no node answers.

    :raises NodeNotRunningError: nothing listens at the node's address.
    """
    if args.url:
        url = args.url.rstrip("/")
    else:
        config = config_from_args(args)
        url = local_url(config.api.bind, config.api.port)
    try:
        response = httpx.get(f"{url}/healthz", timeout=5.0)
    except httpx.ConnectError:
        raise NodeNotRunningError(f"no EdgeCoder node is running at {url}") from None
    except httpx.HTTPError as exc:
        raise NodeNotRunningError(f"the node at {url} did not answer: {exc}") from None
    try:
        health = response.json()
        if response.status_code != 200 or not isinstance(health, dict):
            raise ValueError
    except ValueError:
        raise EdgeCoderError(
            f"{url} answered HTTP {response.status_code}, not an EdgeCoder health document"
        ) from None
    if args.json:
        print(json.dumps(health, indent=2, sort_keys=True))
        return 0
    backend = health.get("backend", {})
    listeners = health.get("listeners", {})
    rows = [
        ("node", health.get("node_id")),
        ("version", health.get("version")),
        ("network", health.get("network")),
        ("uptime", _duration(int(health.get("uptime_s", 0)))),
        ("core", "compiled" if health.get("extensions") else "pure Python"),
        (
            "backend",
            f"{backend.get('active') or 'none'} ({backend.get('state')}; "
            f"asked for {backend.get('requested')}): {backend.get('reason')}",
        ),
        ("mesh", listeners.get("mesh")),
        ("api", listeners.get("api")),
    ]
    for name, value in rows:
        print(f"{name:<8} {value}")
    return 0
