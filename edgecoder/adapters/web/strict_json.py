"""The client API's one JSON decoder: the safety net every request body passes through.

A body is accepted only as strict JSON (RFC 8259) in UTF-8 whose every value a parser
can use without surprises:

* nesting at most :data:`MAX_DEPTH` levels (deeper bodies exhaust the recursion of
  whoever walks them next, ``json.dumps`` of a tool schema included);
* every string and key proper Unicode: no lone UTF-16 surrogate (``"\\ud800"``), which
  Python decodes happily and then cannot encode for the model, the log or the reply;
* integers of at most :data:`MAX_INT_DIGITS` digits, floats finite, and no ``NaN``,
  ``Infinity`` or ``-Infinity`` (JavaScript's extensions that Python accepts by default).

Anything else raises :class:`~edgecoder.errors.BadRequestError` with a message that says
what was wrong, never ``RecursionError``, ``UnicodeEncodeError`` or ``OverflowError``
from deep inside a handler.
"""

from __future__ import annotations

import json
import math
from typing import Any

from edgecoder.errors import BadRequestError

__all__ = ("MAX_DEPTH", "MAX_INT_DIGITS", "decode")

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted (a tool schema rarely passes 10)."""
MAX_INT_DIGITS = 20
"""Longest integer accepted: every 64-bit value, signed or not, fits."""


def _refuse_constant(name: str) -> Any:
    raise BadRequestError(f"request body is not valid JSON: {name} is not a JSON number")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BadRequestError(f"request body has an integer of more than {MAX_INT_DIGITS} digits")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadRequestError(f"request body has a number out of range: {text[:40]}")
    return value


_DECODER = json.JSONDecoder(
    parse_int=_parse_int, parse_float=_parse_float, parse_constant=_refuse_constant
)


def decode(raw: bytes) -> Any:
    """The JSON value in ``raw`` (empty means ``null``), checked as the module says.

    :raises BadRequestError: not UTF-8, not JSON, too deep, or holding a value refused above.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestError(f"request body is not UTF-8: byte {exc.start} is invalid") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        return None
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise _too_deep() from None
    except json.JSONDecodeError as exc:
        raise BadRequestError(f"request body is not valid JSON: {exc}") from None
    _check(value)
    return value


def _too_deep() -> BadRequestError:
    return BadRequestError(f"request body nests deeper than {MAX_DEPTH} levels")


def _check(value: Any) -> None:
    """Walk ``value`` without recursion: depth and Unicode of every string and key."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise _too_deep()
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadRequestError(
            f"request body has a string with a lone UTF-16 surrogate at character {exc.start}"
            " (not valid Unicode)"
        ) from None
