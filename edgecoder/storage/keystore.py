"""The node key file ``node.key`` in the data directory, plain or sealed by a passphrase.

The file is JSON (format ``edgecoder-node-key``, version 1) holding the public key in
the clear, so the node id can be shown without the passphrase, and the 32-byte seed
either in base64 or sealed (:mod:`edgecoder.security.sealing`). It is written
atomically with mode 0600. Loading a sealed key runs Argon2id: call from a thread. The
passphrase comes from the file ``identity.passphrase_file`` names (:func:`read_passphrase`).
"""

from __future__ import annotations

import base64
import json
import logging
import stat
from dataclasses import dataclass
from pathlib import Path

from edgecoder.errors import ConfigError, IdentityError, PassphraseError
from edgecoder.security.identity import NodeIdentity, derive_node_id
from edgecoder.security.sealing import KDF_NAME, Sealed, seal, unseal
from edgecoder.storage.datadir import atomic_write

__all__ = (
    "KEY_FILE",
    "PublicIdentity",
    "load_identity",
    "load_or_create_identity",
    "read_passphrase",
    "read_public",
)

log = logging.getLogger(__name__)

KEY_FILE = "node.key"
_FORMAT = "edgecoder-node-key"


@dataclass(frozen=True, slots=True)
class PublicIdentity:
    """What anyone may know of a node key: its id, public key, and whether it is sealed."""

    node_id: str
    public_key: bytes
    sealed: bool


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str, path: Path) -> bytes:
    if not isinstance(value, str):
        raise IdentityError(f"key file {path} is corrupt: {what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise IdentityError(f"key file {path} is corrupt: {what} is not base64") from None


def _read(path: Path) -> dict[str, object]:
    try:
        info = path.stat()
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise IdentityError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise IdentityError(
            f"key file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}); "
            "run: chmod 600 " + str(path)
        )
    try:
        data = json.loads(raw)
    except ValueError:
        raise IdentityError(f"key file {path} is corrupt: not JSON") from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT or data.get("version") != 1:
        raise IdentityError(f"key file {path} is not an EdgeCoder node key (format version 1)")
    return data


def read_public(data_dir: Path) -> PublicIdentity:
    """Read the node id and public key without needing the passphrase.

    :raises FileNotFoundError: there is no key yet.
    :raises IdentityError: the file is unreadable, corrupt, or readable by others.
    """
    path = data_dir / KEY_FILE
    data = _read(path)
    try:
        public_key = bytes.fromhex(str(data.get("public_key", "")))
        node_id = derive_node_id(public_key)
    except ValueError:
        raise IdentityError(f"key file {path} is corrupt: bad public key") from None
    return PublicIdentity(node_id=node_id, public_key=public_key, sealed=bool(data.get("sealed")))


def load_identity(data_dir: Path, passphrase: bytes | None) -> NodeIdentity:
    """Load the node key, unsealing it when it is sealed.

    :raises FileNotFoundError: there is no key yet.
    :raises PassphraseError: the key is sealed and the passphrase is missing or wrong.
    :raises IdentityError: the file is unreadable, corrupt, or does not match its public key.
    """
    path = data_dir / KEY_FILE
    data = _read(path)
    if data.get("sealed"):
        if not passphrase:
            raise PassphraseError(
                f"key file {path} is sealed: set identity.passphrase_file to the passphrase file"
            )
        if data.get("kdf") != KDF_NAME:
            raise IdentityError(f"key file {path} uses an unknown KDF {data.get('kdf')!r}")
        opslimit, memlimit = data.get("opslimit"), data.get("memlimit")
        if not isinstance(opslimit, int) or not isinstance(memlimit, int):
            raise IdentityError(f"key file {path} is corrupt: bad KDF limits")
        sealed = Sealed(
            salt=_unb64(data.get("salt"), "salt", path),
            opslimit=opslimit,
            memlimit=memlimit,
            box=_unb64(data.get("box"), "box", path),
        )
        seed = unseal(sealed, passphrase)
    else:
        if passphrase:
            log.warning("key file %s is not sealed although a passphrase is configured", path)
        seed = _unb64(data.get("seed"), "seed", path)
    try:
        identity = NodeIdentity(seed)
    except ValueError:
        raise IdentityError(f"key file {path} is corrupt: bad seed") from None
    if identity.public_key.hex() != data.get("public_key"):
        raise IdentityError(f"key file {path} is corrupt: seed and public key disagree")
    return identity


def _write(data_dir: Path, identity: NodeIdentity, passphrase: bytes | None) -> None:
    record: dict[str, object] = {
        "format": _FORMAT,
        "version": 1,
        "node_id": identity.node_id,
        "public_key": identity.public_key.hex(),
    }
    if passphrase:
        sealed = seal(identity.seed, passphrase)
        record |= {
            "sealed": True,
            "kdf": KDF_NAME,
            "opslimit": sealed.opslimit,
            "memlimit": sealed.memlimit,
            "salt": _b64(sealed.salt),
            "box": _b64(sealed.box),
        }
    else:
        record |= {"sealed": False, "seed": _b64(identity.seed)}
    atomic_write(data_dir / KEY_FILE, json.dumps(record, indent=2).encode() + b"\n", mode=0o600)


def load_or_create_identity(data_dir: Path, passphrase: bytes | None) -> tuple[NodeIdentity, bool]:
    """Load the node key, or create it (sealed when a passphrase is given) on first start.

    :raises PassphraseError: an existing sealed key cannot be opened with ``passphrase``.
    :raises IdentityError: an existing key file is unreadable or corrupt.
    :returns: the identity, and whether it was created just now.
    """
    try:
        return load_identity(data_dir, passphrase), False
    except FileNotFoundError:
        pass
    identity = NodeIdentity.generate()
    _write(data_dir, identity, passphrase)
    log.info("created node key %s (%s)", identity.node_id, "sealed" if passphrase else "plain")
    return identity, True


def read_passphrase(path: str) -> bytes | None:
    """Read the key passphrase from a file (trailing newline dropped); None if unset.

    :param path: ``identity.passphrase_file``; empty when the key is not sealed.
    :raises ConfigError: the file is set but unreadable or empty.
    """
    if not path:
        return None
    try:
        passphrase = Path(path).read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ConfigError(f"identity.passphrase_file {path}: {exc.strerror or exc}") from None
    if not passphrase:
        raise ConfigError(f"identity.passphrase_file {path} is empty")
    return passphrase
