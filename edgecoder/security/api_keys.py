"""API keys: how they look, how they are made, and the only form in which they are stored.

A key is ``ec_`` followed by 43 base64url characters (32 random bytes). Only its SHA-256
is stored: the keys are random, so a fast hash is as good as a slow one against guessing,
and a stolen database reveals no usable key.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

__all__ = ("KEY_PREFIX", "generate_key", "hash_key", "looks_like_key", "valid_key_name")

KEY_PREFIX = "ec_"
_KEY = re.compile(r"^ec_[A-Za-z0-9_-]{43}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def generate_key() -> str:
    """A new random API key."""
    raw = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
    return KEY_PREFIX + raw


def hash_key(key: str) -> str:
    """The stored form of a key: hex SHA-256 of its text."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def looks_like_key(text: str) -> bool:
    """Whether ``text`` has the shape of an EdgeCoder API key."""
    return bool(_KEY.fullmatch(text))


def valid_key_name(name: str) -> bool:
    """Names are 1-64 of letters, digits and ``._@-``, starting with a letter or digit."""
    return bool(_NAME.fullmatch(name))
