"""``edgecoder peers``: every peer the local node knows, from ``GET /admin/peers``.

Needs an admin API key: ``--api-key KEY`` or the ``EDGECODER_API_KEY`` variable.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from edgecoder.cli.node_http import admin_key, get_json, node_url, print_table

__all__ = ("run",)


def _ago(stamp_ms: int | None, now_ms: int) -> str:
    if stamp_ms is None:
        return "-"
    seconds = max(0, (now_ms - stamp_ms) // 1000)
    return f"{seconds}s ago" if seconds < 120 else f"{seconds // 60}m ago"


def _row(peer: dict[str, Any], now_ms: int) -> list[str]:
    load = peer.get("load") or {}
    models = ",".join(m.get("name", "?") for m in peer.get("models", [])) or "-"
    busy = " busy" if load.get("owner_busy") else ""
    load_text = "-" if load.get("load_pct") is None else f"{load['load_pct']}%{busy}"
    return [str(peer.get("node_id")), str(peer.get("state")), str(peer.get("url") or "-"),
            _ago(peer.get("last_heard_ms"), now_ms), models, load_text]  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Print the peers as a table (or JSON)."""
    document = get_json(node_url(args), "/admin/peers", admin_key(args))
    if args.json:
        print(json.dumps(document, indent=2, sort_keys=True))
        return 0
    peers = document.get("peers", [])
    if not peers:
        print(f"no peers known to {document.get('node_id')} in network {document.get('network')}")
        return 0
    now_ms = time.time_ns() // 1_000_000
    rows = [["NODE", "STATE", "MESH URL", "LAST HEARD", "MODELS", "LOAD"]]
    rows += [_row(peer, now_ms) for peer in peers]
    print_table(rows)
    return 0
