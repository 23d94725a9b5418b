"""``edgecoder credits``: this node's credits, the verification of its chains, vouches.

``credits`` and ``credits verify`` ask the running node (``GET /admin/ledger``,
``GET /admin/ledger/verify``) when an admin key is given (``--api-key`` or
``EDGECODER_API_KEY``); without one, or when no node answers, they read the node's
database themselves (:mod:`edgecoder.cli.ledger_local`). ``credits vouch NODE_ID`` asks
the running node to vouch (``POST /admin/ledger/vouch``): it signs with keys only the
agent holds, so it always needs the agent and an admin key.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from edgecoder.cli.ledger_local import local_ledger, local_verify
from edgecoder.cli.node_http import admin_key, get_json, node_url, post_json, print_table
from edgecoder.cli.options import KEY_VARIABLE, config_from_args
from edgecoder.errors import ConfigError, NodeNotRunningError
from edgecoder.ledger.pricing import format_mc
from edgecoder.ledger.rules import EFFECT

__all__ = ("run", "verify", "vouch")

EXIT_UNVERIFIED = 1
_VERIFY_TIMEOUT_S = 120.0
"""A long chain verifies in seconds even on a Pi; the answer waits for all of it."""


def _ask_or_read(
    args: argparse.Namespace, path: str, offline: Callable[[], dict[str, Any]], timeout_s: float
) -> dict[str, Any]:
    """The running node's answer when there is a key to ask it with, else the database's
    (also when no node answers locally).

    :raises ConfigError: ``--url`` names a node but no key is given.
    """
    key = args.api_key or os.environ.get(KEY_VARIABLE)
    if not key:
        if args.url:
            raise ConfigError(f"an admin API key is needed to ask {args.url}: pass --api-key "
                              f"or set {KEY_VARIABLE}")  # fmt: skip
        return offline()
    try:
        return get_json(node_url(args), path, key, timeout_s)
    except NodeNotRunningError:
        if args.url:
            raise
        return offline()


def run(args: argparse.Namespace) -> int:
    """Print this node's credits and its newest entries (or JSON)."""
    limit = max(1, min(1000, args.limit))
    document = _ask_or_read(args, f"/admin/ledger?limit={limit}",
                            lambda: local_ledger(config_from_args(args), limit), 10.0)  # fmt: skip
    if args.json:
        print(json.dumps(document, indent=2, sort_keys=True))
        return 0
    head = document.get("head", {})
    source = "" if document.get("running", True) else "  (read from the database: no node answered)"
    rows = [
        ("node", f"{document.get('node_id')}{source}"),
        ("balance", f"{format_mc(document['balance'])} credits"),
        ("held", f"{format_mc(document['held'])}"),
        ("available", f"{format_mc(document['available'])}"),
        ("allowance", f"{format_mc(document.get('allowance', 0))}"),
        ("head", f"#{head.get('seq', 0)} {str(head.get('hash', ''))[:16]}"),
        ("economy", str(document.get("network_key") or "none yet")[:16]),
        ("verified", "yes" if document.get("verified") else "NO"),
    ]
    for name, value in rows:
        print(f"{name:<10} {value}")
    entries = document.get("entries", [])
    print(f"\nrecent entries ({len(entries)}):")
    if entries:
        table = [["SEQ", "KIND", "AMOUNT", "PARTY", "REF", "WHEN"]]
        table += [_entry_row(e["body"]) for e in entries]
        print_table(table)
    return 0


def _entry_row(body: dict[str, Any]) -> list[str]:
    signed = EFFECT.get(body["kind"], 1) * body["amount"]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(body["ts"] / 1000))
    return [str(body["seq"]), body["kind"], ("+" if signed > 0 else "") + format_mc(signed),
            str(body["party"])[:12], str(body["ref"])[:12], when]  # fmt: skip


def verify(args: argparse.Namespace) -> int:
    """Verify every chain this node holds; exit 1 when one does not verify."""
    document = _ask_or_read(args, "/admin/ledger/verify",
                            lambda: local_verify(config_from_args(args)),
                            _VERIFY_TIMEOUT_S)  # fmt: skip
    if args.json:
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        own = document.get("node_id")
        table = [["CHAIN", "ENTRIES", "HEAD", "BALANCE", "SIGNATURES", "RESULT"]]
        for chain in document["chains"]:
            name = chain["node"] + (" (this node)" if chain["node"] == own else "")
            result = "ok" if chain["verified"] else (
                f"FAILS at #{chain['at_seq']}: {chain['message']}")  # fmt: skip
            table.append([name, str(chain["entries"]), str(chain["seq"]),
                          format_mc(chain["balance"]),
                          "checked" if chain["signatures"] else "not checked", result])  # fmt: skip
        print_table(table)
        if not all(c["signatures"] for c in document["chains"]):
            print("(signatures not checked: the author's key is known only to a running node "
                  "that holds its peer record; links and chain rules were checked)")  # fmt: skip
    bad = [c for c in document["chains"] if not c["verified"]]
    if bad:
        print(f"edgecoder: error: {len(bad)} of {len(document['chains'])} chains do not verify",
              file=sys.stderr)  # fmt: skip
        return EXIT_UNVERIFIED
    return 0


def vouch(args: argparse.Namespace) -> int:
    """Have the running node vouch for ``args.node``."""
    document = post_json(node_url(args), "/admin/ledger/vouch", {"node": args.node},
                         admin_key(args), status=201)  # fmt: skip
    if args.json:
        print(json.dumps(document, indent=2, sort_keys=True))
        return 0
    voucher = ("as the network key's holder" if document["voucher"] == "network"
               else f"with this node's standing (slot {document['slot']})")  # fmt: skip
    print(
        f"vouched for {document['node']}: {format_mc(document['amount'])} credits, "
        f"{voucher}; it claims them when it next hears this node's ledger head"
    )
    return 0
