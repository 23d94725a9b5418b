"""``edgecoder status``: ask the local node how it is, or say plainly that none runs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from edgecoder.cli.node_http import get_json, node_url

__all__ = ("run",)


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours or days else []
    parts += [f"{minutes}m", f"{secs}s"] if minutes or parts else [f"{secs}s"]
    return " ".join(parts)


def _peers(mesh: dict[str, Any]) -> str:
    states = mesh.get("peers") or {}
    detail = ", ".join(f"{states.get(s, 0)} {s}" for s in ("alive", "suspect", "dead"))
    return f"{mesh.get('peer_count', 0)} ({detail})"


def run(args: argparse.Namespace) -> int:
    """Print the node's health; exit 3 when no node answers.

    :raises NodeNotRunningError: nothing listens at the node's address.
    """
    health = get_json(node_url(args), "/healthz")
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
        ("peers", _peers(health.get("mesh", {}))),
        ("api", listeners.get("api")),
    ]
    conflict = health.get("mesh", {}).get("identity_conflict")
    if conflict:
        rows.append(("CONFLICT", conflict.get("message")))
    for name, value in rows:
        print(f"{name:<8} {value}")
    return 0
