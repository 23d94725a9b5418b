"""Canonical JSON: the one encoding for everything EdgeCoder signs or hashes.

:func:`encode` is the compiled core's (or its pure twin's); :func:`decode` reads bytes
from the network strictly, refusing with a distinct :class:`~edgecoder.errors.DecodeError`
code anything that is not exactly what :func:`encode` would write: oversize input,
invalid UTF-8 or JSON, duplicate keys, floats, integers outside +/-(2**53 - 1), nesting
deeper than :data:`MAX_DEPTH`, and any other spelling of the same value (extra
whitespace, unsorted keys, escapes ``encode`` would not use) as ``not_canonical``.
Specified, with test vectors, in ``docs/protocol.md``.
"""

from __future__ import annotations

import json
from typing import Any

from edgecoder.errors import CanonicalError, DecodeError
from edgecoder.speedups import canonical as _core

__all__ = ("MAX_DEPTH", "MAX_SIZE", "decode", "encode")

MAX_DEPTH = _core.MAX_DEPTH
MAX_SIZE = 1 << 20
"""Largest canonical document accepted from the network (1 MiB)."""

encode = _core.encode


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise DecodeError("duplicate_key", f"key {duplicate!r} appears twice")
    return result


def _no_float(text: str) -> float:
    raise DecodeError("float", f"number {text} is not an integer")


def _no_constant(text: str) -> float:
    raise DecodeError("float", f"{text} is not allowed")


def _depth(value: object, depth: int) -> None:
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise DecodeError("depth", f"nesting deeper than {MAX_DEPTH} levels")
        for item in value.values():
            _depth(item, depth + 1)
    elif isinstance(value, list):
        if depth >= MAX_DEPTH:
            raise DecodeError("depth", f"nesting deeper than {MAX_DEPTH} levels")
        for item in value:
            _depth(item, depth + 1)


def decode(data: bytes, *, max_size: int = MAX_SIZE) -> Any:
    """Parse canonical bytes strictly.

    :raises DecodeError: with ``code`` one of ``oversize``, ``utf8``, ``json``,
        ``duplicate_key``, ``float``, ``integer_range``, ``depth``, ``not_canonical``.
    :returns: the decoded value (dicts, lists, str, int, bool, None).
    """
    if len(data) > max_size:
        raise DecodeError("oversize", f"{len(data)} bytes exceeds the limit of {max_size}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("utf8", f"invalid UTF-8 at byte {exc.start}") from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_pairs,
            parse_float=_no_float,
            parse_constant=_no_constant,
        )
    except DecodeError:
        raise
    except RecursionError:
        # The C parser guards its own recursion; that deep is far past MAX_DEPTH anyway.
        raise DecodeError("depth", f"nesting deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise DecodeError("json", str(exc)) from None
    _depth(value, 0)
    try:
        again = encode(value)
    except CanonicalError as exc:
        raise DecodeError("integer_range", str(exc)) from None
    if again != data:
        raise DecodeError("not_canonical", "the same value has another canonical spelling")
    return value
