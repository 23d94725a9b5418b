"""A node's Ed25519 identity and the ``node_id`` derived from its public key.

``node_id`` is not chosen: it is the first 20 bytes of
``SHA-256("edgecoder/node-id/v1\\0" || public_key)`` in lowercase base32 without
padding (32 characters), so two nodes can never share one and any peer can check that
an id belongs to the key that signs for it.
"""

from __future__ import annotations

import secrets

from edgecoder.speedups import envelope, signing

__all__ = ("NODE_ID_DOMAIN", "NodeIdentity", "derive_node_id", "is_node_id")

NODE_ID_DOMAIN = b"edgecoder/node-id/v1\x00"
_NODE_ID_LEN = 32
_BASE32_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz234567")


def derive_node_id(public_key: bytes) -> str:
    """Return the node id that belongs to an Ed25519 public key.

    :raises ValueError: ``public_key`` is not 32 bytes.
    """
    if len(public_key) != signing.PUBLIC_KEY_BYTES:
        raise ValueError(f"public key must be {signing.PUBLIC_KEY_BYTES} bytes")
    node_id: str = envelope.node_id_of(public_key)
    return node_id


def is_node_id(text: str) -> bool:
    """Tell whether ``text`` has the shape of a node id (it may still name no node)."""
    return len(text) == _NODE_ID_LEN and set(text) <= _BASE32_ALPHABET


class NodeIdentity:
    """An Ed25519 key pair and its node id. The secret never appears in ``repr``."""

    __slots__ = ("_secret_key", "_seed", "node_id", "public_key")

    def __init__(self, seed: bytes) -> None:
        """Build the identity of a 32-byte seed.

        :raises ValueError: ``seed`` is not 32 bytes.
        """
        public_key, secret_key = signing.seed_keypair(seed)
        self._seed = seed
        self._secret_key = secret_key
        self.public_key: bytes = public_key
        self.node_id: str = derive_node_id(public_key)

    @classmethod
    def generate(cls) -> NodeIdentity:
        """Create a new identity from the operating system's random source."""
        return cls(secrets.token_bytes(signing.SEED_BYTES))

    @property
    def seed(self) -> bytes:
        """The 32-byte private seed; only the key store should read it."""
        return self._seed

    @property
    def secret_key(self) -> bytes:
        """The 64-byte libsodium secret key; only signing code should read it."""
        return self._secret_key

    def sign(self, message: bytes) -> bytes:
        """Return the detached Ed25519 signature of ``message`` by this node."""
        return signing.sign(self._secret_key, message)

    def __repr__(self) -> str:
        return f"NodeIdentity(node_id={self.node_id!r})"
