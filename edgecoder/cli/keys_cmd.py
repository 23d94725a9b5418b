"""``edgecoder keys``: this node's identity (and, later, API keys)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from edgecoder.cli.options import add_config_option, config_from_args
from edgecoder.errors import IdentityError
from edgecoder.storage.keystore import KEY_FILE, read_public

__all__ = ("add_parser", "show")


def add_parser(commands: Any) -> None:
    """Register ``keys`` and its subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser("keys", help="node identity keys")
    keys = parser.add_subparsers(dest="keys_command", metavar="ACTION", parser_class=type(parser))
    keys.required = True
    show_parser = keys.add_parser("show", help="print the node id and public key")
    add_config_option(show_parser)
    show_parser.add_argument("--data-dir", metavar="DIR", help="the node's data directory")
    show_parser.add_argument("--json", action="store_true", help="print JSON")
    show_parser.set_defaults(handler=show)


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
