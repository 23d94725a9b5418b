"""``edgecoder peers``: every peer the local node knows, from ``GET /admin/peers``.

Needs an admin API key: ``--api-key KEY`` or the ``EDGECODER_API_KEY`` variable.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from edgecoder.cli.node_http import get_json, node_url
from edgecoder.cli.options import add_config_option
from edgecoder.errors import ConfigError

__all__ = ("add_parser", "run")

KEY_VARIABLE = "EDGECODER_API_KEY"


def add_parser(commands: Any) -> None:
    """Register ``peers``."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "peers", help="list the mesh peers the local node knows (needs an admin key)"
    )
    add_config_option(parser)
    parser.add_argument("--url", help="the node's client listener (default: from the config)")
    parser.add_argument(
        "--api-key", metavar="KEY", help=f"an admin API key (default: ${KEY_VARIABLE})"
    )
    parser.add_argument("--json", action="store_true", help="print the raw JSON")
    parser.set_defaults(handler=run)


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
    key = args.api_key or os.environ.get(KEY_VARIABLE)
    if not key:
        raise ConfigError(
            f"an admin API key is needed: pass --api-key or set {KEY_VARIABLE} "
            "(create one with 'edgecoder keys create NAME --admin')"
        )
    document = get_json(node_url(args), "/admin/peers", key)
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
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0
