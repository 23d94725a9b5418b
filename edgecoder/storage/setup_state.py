"""Whether this node is waiting to be claimed: the setup-code verifier and the claim record.

Two files in the data directory tell the story (docs/image.md, "Claim"):

* ``setup-code.json`` — present while a setup code is open: the code's
  :class:`~edgecoder.security.setup_codes.SetupVerifier` (salt and HMAC, never the code).
  The appliance's ``edgecoder setup-code`` (root, at boot) writes it, owned by the data
  directory's owner so the agent can read it; the code itself stays in a root-only file.
* ``claimed.json`` — written once the node has an owner: which admin key claimed it,
  when, and from where. Its presence closes setup for good, and the appliance's path
  unit deletes the root-only code when it appears.

Wiping the data directory removes both, with the node key and the database: the next
boot makes a new identity and a new code, and the box is claimed afresh.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from edgecoder.errors import StorageError
from edgecoder.security.setup_codes import SetupVerifier
from edgecoder.storage.datadir import atomic_write, remove_file

__all__ = (
    "CLAIM_FILE",
    "VERIFIER_FILE",
    "ClaimRecord",
    "read_claim",
    "read_verifier",
    "record_claim",
    "remove_verifier",
    "write_verifier",
)

VERIFIER_FILE = "setup-code.json"
CLAIM_FILE = "claimed.json"
_VERIFIER_FORMAT = "edgecoder-setup-verifier"
_CLAIM_FORMAT = "edgecoder-claim"


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    """Who took the node over: the admin key's name, when (ms), and from which address."""

    name: str
    claimed_ms: int
    address: str


def _load(path: Path, form: str) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise StorageError(f"{path} is corrupt: not JSON") from None
    if not isinstance(data, dict) or data.get("format") != form or data.get("version") != 1:
        raise StorageError(f"{path} is not an EdgeCoder {form} file (version 1)")
    return data


def _bytes(data: dict[str, object], field: str, path: Path) -> bytes:
    value = data.get(field)
    try:
        if not isinstance(value, str):
            raise ValueError(field)
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise StorageError(f"{path} is corrupt: bad {field}") from None


def read_verifier(data_dir: Path) -> SetupVerifier | None:
    """The open setup code's verifier, or None when no code is open.

    :raises StorageError: the file is unreadable or corrupt.
    """
    path = data_dir / VERIFIER_FILE
    data = _load(path, _VERIFIER_FORMAT)
    if data is None:
        return None
    return SetupVerifier(_bytes(data, "salt", path), _bytes(data, "digest", path))


def write_verifier(data_dir: Path, verifier: SetupVerifier) -> None:
    """Open setup with ``verifier`` (mode 0600, owned like the data directory).

    :raises StorageError: it cannot be written (full, read-only, failing).
    """
    path = data_dir / VERIFIER_FILE
    document = {
        "format": _VERIFIER_FORMAT,
        "version": 1,
        "salt": base64.b64encode(verifier.salt).decode("ascii"),
        "digest": base64.b64encode(verifier.digest).decode("ascii"),
    }
    atomic_write(path, json.dumps(document, sort_keys=True).encode("ascii") + b"\n")
    owner = data_dir.stat()
    if os.geteuid() == 0 and (owner.st_uid, owner.st_gid) != (0, 0):
        # Written by root at boot, read by the agent's own user.
        try:
            os.chown(path, owner.st_uid, owner.st_gid)
        except OSError as exc:
            raise StorageError(f"cannot hand {path} to the agent: {exc.strerror}") from None


def remove_verifier(data_dir: Path) -> None:
    """Close setup without a claim record (the code is being replaced).

    :raises StorageError: it cannot be removed.
    """
    remove_file(data_dir / VERIFIER_FILE)


def read_claim(data_dir: Path) -> ClaimRecord | None:
    """The claim record, or None when the node has not been claimed.

    :raises StorageError: the file is unreadable or corrupt.
    """
    path = data_dir / CLAIM_FILE
    data = _load(path, _CLAIM_FORMAT)
    if data is None:
        return None
    name, claimed_ms, address = data.get("name"), data.get("claimed_ms"), data.get("address")
    if not isinstance(name, str) or not isinstance(claimed_ms, int) or not isinstance(address, str):
        raise StorageError(f"{path} is corrupt: bad fields")
    return ClaimRecord(name, claimed_ms, address)


def record_claim(data_dir: Path, record: ClaimRecord) -> None:
    """Record the claim, then remove the verifier: setup is closed for good.

    The record goes first, so a crash in between leaves a claimed node with a stale
    verifier that nothing accepts any more.

    :raises StorageError: either file cannot be written or removed.
    """
    document = {
        "format": _CLAIM_FORMAT,
        "version": 1,
        "name": record.name,
        "claimed_ms": record.claimed_ms,
        "address": record.address,
    }
    atomic_write(data_dir / CLAIM_FILE, json.dumps(document, sort_keys=True).encode() + b"\n")
    remove_file(data_dir / VERIFIER_FILE)
