"""``edgecoder keys``: the node's identity, and the API keys of its users."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from edgecoder.access import AccessControl
from edgecoder.cli.local_db import run_with_database
from edgecoder.cli.options import add_config_option, config_from_args
from edgecoder.clock import SystemClock
from edgecoder.errors import IdentityError
from edgecoder.ledger.pricing import format_mc
from edgecoder.storage.database import Database
from edgecoder.storage.datadir import prepare_data_dir
from edgecoder.storage.keystore import KEY_FILE, load_or_create_identity, read_public

__all__ = ("add_parser", "budget", "create", "init", "list_keys", "revoke", "show")


def add_parser(commands: Any) -> None:
    """Register ``keys`` and its subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser("keys", help="node identity and API keys")
    keys = parser.add_subparsers(dest="keys_command", metavar="ACTION", parser_class=type(parser))
    keys.required = True

    def sub(name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = keys.add_parser(name, help=help_text)
        add_config_option(p)
        p.add_argument("--data-dir", metavar="DIR", help="the node's data directory")
        p.set_defaults(handler=handler)
        return p

    init_parser = sub("init", "create the node key if there is none; print the node id", init)
    init_parser.add_argument("--json", action="store_true", help="print JSON")
    show_parser = sub("show", "print the node id and public key", show)
    show_parser.add_argument("--json", action="store_true", help="print JSON")
    create_parser = sub("create", "create an API key and print it (shown once)", create)
    create_parser.add_argument("name", help="the key's name: its credit account")
    create_parser.add_argument("--admin", action="store_true", help="may manage the node")
    list_parser = sub("list", "list API keys (never the keys themselves)", list_keys)
    list_parser.add_argument("--json", action="store_true", help="print JSON")
    revoke_parser = sub("revoke", "revoke an API key by name", revoke)
    revoke_parser.add_argument("name", help="the key's name")
    budget_parser = sub("budget", "give a key's credit account a budget", budget)
    budget_parser.add_argument("name", help="the key's name")
    budget_parser.add_argument(
        "mc", metavar="MC", type=_budget,
        help="the most its requests may spend on peers' work, in millicredits "
        "(1 credit = 1000); 'none': no limit",
    )  # fmt: skip


def _budget(text: str) -> int | None:
    if text == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a budget is a whole number of millicredits or 'none', not {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError("a budget is 0 or more millicredits ('none': no limit)")
    return value


def _access(database: Database) -> AccessControl:
    return AccessControl(database, SystemClock(), rate_per_min=1, burst=1)


def show(args: argparse.Namespace) -> int:
    """Print the node id and public key; needs no passphrase, creates nothing.

    :raises IdentityError: there is no key yet, or the key file is unusable.
    """
    config = config_from_args(args)
    data_dir = config.node.data_dir
    try:
        public = read_public(data_dir)
    except FileNotFoundError:
        raise IdentityError(
            f"no node key in {data_dir} ({KEY_FILE} is missing); start the agent once to create it"
        ) from None
    if args.json:
        document = {
            "node_id": public.node_id,
            "public_key": public.public_key.hex(),
            "sealed": public.sealed,
        }
        print(json.dumps(document, indent=2))
    else:
        print(f"node_id     {public.node_id}")
        print(f"public_key  {public.public_key.hex()}")
        print(f"sealed      {'yes' if public.sealed else 'no'}")
    return 0


def init(args: argparse.Namespace) -> int:
    """Create the node key unless there is one (the appliance's first boot), print the id.

    :raises PassphraseError: the configured passphrase cannot open an existing sealed key.
    :raises IdentityError: an existing key file is unusable.
    :raises DataDirError: the data directory is unusable.
    """
    # Imported here: the daemon pulls in the web stack, which first boot does not need.
    from edgecoder.daemon.agent import read_passphrase

    config = config_from_args(args)
    data_dir = config.node.data_dir
    prepare_data_dir(data_dir)
    passphrase = read_passphrase(config.identity.passphrase_file)
    identity, created = load_or_create_identity(data_dir, passphrase)
    if args.json:
        print(json.dumps({"node_id": identity.node_id, "created": created}))
    else:
        print(identity.node_id)
    return 0


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
