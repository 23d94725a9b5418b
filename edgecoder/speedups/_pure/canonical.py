"""Canonical JSON encoding: the exact bytes that EdgeCoder signs and hashes (pure twin).

The encoding is ``json.dumps(obj, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` as UTF-8, restricted to a data model every language can
reproduce exactly: objects with string keys, arrays, strings, booleans, null, and
integers within +/-(2**53 - 1). Floats, other types, lone surrogates and nesting
deeper than :data:`MAX_DEPTH` are refused with :class:`~edgecoder.errors.CanonicalError`.
"""

from __future__ import annotations

import json

from edgecoder.errors import CanonicalError

__all__ = ("MAX_DEPTH", "MAX_SAFE_INTEGER", "encode")

MAX_DEPTH = 32
MAX_SAFE_INTEGER = 2**53 - 1

_ENCODER = json.JSONEncoder(
    ensure_ascii=False,
    sort_keys=True,
    separators=(",", ":"),
    allow_nan=False,
    check_circular=False,
)


def encode(obj: object) -> bytes:
    """Return the canonical UTF-8 bytes of ``obj``.

    :param obj: a dict, list, tuple, str, int, bool or None, nested at most
        :data:`MAX_DEPTH` levels.
    :raises CanonicalError: the object holds a float, a non-string key, an integer
        out of the safe range, a lone surrogate, an unsupported type, or is too deep.
    :returns: the canonical encoding.
    """
    _check(obj, 0)
    try:
        return _ENCODER.encode(obj).encode("utf-8")
    except UnicodeEncodeError:
        raise CanonicalError("strings must be valid Unicode (lone surrogate found)") from None


def _check(obj: object, depth: int) -> None:
    kind = type(obj)
    if kind is str or kind is bool or obj is None:
        return
    if kind is int:
        if not -MAX_SAFE_INTEGER <= obj <= MAX_SAFE_INTEGER:  # type: ignore[operator]
            raise CanonicalError("integers must lie within +/-(2**53 - 1)")
        return
    if depth >= MAX_DEPTH:
        raise CanonicalError(f"nesting deeper than {MAX_DEPTH} levels")
    if kind is dict:
        for key, value in obj.items():  # type: ignore[attr-defined]
            if type(key) is not str:
                raise CanonicalError("object keys must be strings")
            _check(value, depth + 1)
        return
    if kind is list or kind is tuple:
        for item in obj:  # type: ignore[attr-defined]
            _check(item, depth + 1)
        return
    if kind is float:
        raise CanonicalError("floats are not allowed in canonical data; use integers")
    raise CanonicalError(f"type {kind.__name__} has no canonical encoding")
