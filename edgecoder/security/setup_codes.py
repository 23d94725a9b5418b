"""One-time setup codes: how they look, how they are made, and how one is checked.

A fresh appliance has no API key anybody knows. Its first boot makes a setup code, shows
it on the console, and keeps only a :class:`SetupVerifier` where the agent can read it;
the first ``POST /setup`` that presents the code gets the first admin key.

A code is 12 characters of Crockford's base32 (60 random bits), shown in groups of four:
``7KQ2-M9XD-4HRT``. People type it from a screen, so case, dashes and spaces do not
matter, and the letters Crockford leaves out for looking like digits are read as those
digits (``O`` as ``0``, ``I`` and ``L`` as ``1``). The verifier is an HMAC-SHA256 of the
normalised code under a random salt; checking compares digests in constant time and does
the same work for a malformed code as for a wrong one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

__all__ = (
    "ALPHABET",
    "CODE_LENGTH",
    "SetupVerifier",
    "check_code",
    "generate_code",
    "make_verifier",
    "normalize_code",
)

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 12
_GROUP = 4
_SALT_BYTES = 16
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEPARATORS = str.maketrans("", "", "- \t")


@dataclass(frozen=True, slots=True)
class SetupVerifier:
    """What the agent keeps of a setup code: enough to check one, not to show one."""

    salt: bytes
    digest: bytes


def generate_code() -> str:
    """A new random setup code, grouped for reading (``XXXX-XXXX-XXXX``)."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + _GROUP] for i in range(0, CODE_LENGTH, _GROUP))


def normalize_code(text: str) -> str | None:
    """``text`` as the 12 characters it stands for, or None when it cannot be a code."""
    compact = text.upper().translate(_SEPARATORS).translate(_LOOKALIKES)
    if len(compact) != CODE_LENGTH or any(c not in ALPHABET for c in compact):
        return None
    return compact


def _digest(salt: bytes, normalized: str) -> bytes:
    return hmac.new(salt, normalized.encode("ascii"), hashlib.sha256).digest()


def make_verifier(code: str, salt: bytes | None = None) -> SetupVerifier:
    """The verifier of ``code`` (a new random salt unless one is given).

    :raises ValueError: ``code`` is not a setup code.
    """
    normalized = normalize_code(code)
    if normalized is None:
        raise ValueError("not a setup code")
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    return SetupVerifier(salt, _digest(salt, normalized))


def check_code(verifier: SetupVerifier, text: str) -> bool:
    """Whether ``text`` is the code behind ``verifier``, compared in constant time."""
    normalized = normalize_code(text)
    # A malformed code costs the same HMAC and comparison as a wrong one.
    candidate = _digest(verifier.salt, normalized or "")
    return hmac.compare_digest(candidate, verifier.digest) and normalized is not None
