"""The network key file: the treasury's Ed25519 key, held by the node that founded the
network's economy (or wherever its operator put it).

JSON (format ``edgecoder-network-key``, version 1) with the public key and the 32-byte
seed in base64, written atomically with mode 0600 and refused when others can read it.
Only the holder has this file; every other node knows the network key's public half
from the gossiped ledger heads.
"""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

from edgecoder.errors import IdentityError
from edgecoder.security.identity import NodeIdentity
from edgecoder.storage.datadir import atomic_write

__all__ = ("NETWORK_KEY_FILE", "create_network_key", "load_network_key")

NETWORK_KEY_FILE = "network.key"
_FORMAT = "edgecoder-network-key"


def load_network_key(path: Path) -> NodeIdentity | None:
    """The network key at ``path``, or None when there is no such file.

    :raises IdentityError: unreadable, corrupt, or readable by others.
    """
    try:
        info = path.stat()
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IdentityError(f"cannot read network key {path}: {exc.strerror or exc}") from None
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise IdentityError(f"network key {path} is readable by others; run: chmod 600 {path}")
    try:
        data = json.loads(raw)
        if data.get("format") != _FORMAT or data.get("version") != 1:
            raise ValueError("not a network key")
        identity = NodeIdentity(base64.b64decode(data["seed"], validate=True))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise IdentityError(f"network key {path} is corrupt or not a network key") from None
    if identity.public_key.hex() != data.get("public_key"):
        raise IdentityError(f"network key {path} is corrupt: seed and public key disagree")
    return identity


def create_network_key(path: Path) -> NodeIdentity:
    """Make a new network key at ``path``.

    :raises IdentityError: a file is already there (a network key is never replaced).
    :raises StorageError: it could not be written.
    """
    if path.exists():
        raise IdentityError(f"{path} exists: a network key is never replaced")
    identity = NodeIdentity.generate()
    record = {"format": _FORMAT, "version": 1, "public_key": identity.public_key.hex(),
              "seed": base64.b64encode(identity.seed).decode("ascii")}  # fmt: skip
    atomic_write(path, json.dumps(record, indent=2).encode() + b"\n", mode=0o600)
    return identity
