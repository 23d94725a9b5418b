"""``edgecoder keys create|list|revoke|budget``: the API keys of the node's users.

They live in the node's database, which these commands open whether or not the agent
runs (:mod:`edgecoder.cli.local_db`); the node's own key is :mod:`edgecoder.cli.identity_cmd`.
"""

from __future__ import annotations

import argparse
import json
import time

from edgecoder.access import AccessControl
from edgecoder.cli.local_db import run_with_database
from edgecoder.cli.options import config_from_args
from edgecoder.clock import SystemClock
from edgecoder.ledger.pricing import format_mc
from edgecoder.storage.database import Database

__all__ = ("budget", "create", "list_keys", "revoke")


def _access(database: Database) -> AccessControl:
    return AccessControl(database, SystemClock(), rate_per_min=1, burst=1)


def create(args: argparse.Namespace) -> int:
    """Create a key and print it alone on stdout."""
    config = config_from_args(args)
    key = run_with_database(config, lambda db: _access(db).create_key(args.name, args.admin))
    print(key)
    return 0


def _when(ms: int | None) -> str:
    return "-" if ms is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000))


def list_keys(args: argparse.Namespace) -> int:
    """Print every key's name, role, dates and state."""
    config = config_from_args(args)
    records = run_with_database(config, lambda db: _access(db).list_keys())
    if args.json:
        rows = [
            {"name": r.name, "admin": r.admin, "created_ms": r.created_ms,
             "last_used_ms": r.last_used_ms, "revoked_ms": r.revoked_ms,
             "budget_mc": r.budget_mc, "spent_mc": r.spent_mc}
            for r in records
        ]  # fmt: skip
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'NAME':<24} {'ROLE':<6} {'CREATED':<16} {'LAST USED':<16} {'BUDGET':>12} "
          f"{'SPENT':>12} STATE")  # fmt: skip
    for r in records:
        role = "admin" if r.admin else "user"
        state = "active" if r.active else f"revoked {_when(r.revoked_ms)}"
        limit = "none" if r.budget_mc is None else format_mc(r.budget_mc)
        print(f"{r.name:<24} {role:<6} {_when(r.created_ms):<16} {_when(r.last_used_ms):<16} "
              f"{limit:>12} {format_mc(r.spent_mc):>12} {state}")  # fmt: skip
    return 0


def budget(args: argparse.Namespace) -> int:
    """Give a key's credit account a budget (or none: no limit)."""
    config = config_from_args(args)
    run_with_database(config, lambda db: _access(db).set_budget(args.name, args.mc))
    shown = "no limit" if args.mc is None else f"{format_mc(args.mc)} credits"
    print(f"API key '{args.name}': budget {shown} (what it spent so far still counts)")
    return 0


def revoke(args: argparse.Namespace) -> int:
    """Revoke a key by name."""
    config = config_from_args(args)
    run_with_database(config, lambda db: _access(db).revoke_key(args.name))
    print(f"revoked API key '{args.name}'")
    return 0
