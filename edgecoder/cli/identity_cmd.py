"""``edgecoder keys init|show``: the node's own key, created at first boot and shown.

Neither opens the database: the appliance runs ``keys init`` before the agent's first
start (``edgecoder-firstboot.service``), and ``keys show`` works without the passphrase.
"""

from __future__ import annotations

import argparse
import json

from edgecoder.cli.options import config_from_args
from edgecoder.errors import IdentityError
from edgecoder.storage.datadir import prepare_data_dir
from edgecoder.storage.keystore import (
    KEY_FILE,
    load_or_create_identity,
    read_passphrase,
    read_public,
)

__all__ = ("init", "show")


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

    :raises ConfigError: ``identity.passphrase_file`` is set but unreadable or empty.
    :raises PassphraseError: the configured passphrase cannot open an existing sealed key.
    :raises IdentityError: an existing key file is unusable.
    :raises DataDirError: the data directory is unusable.
    """
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
