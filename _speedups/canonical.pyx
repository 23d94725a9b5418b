# SPDX-License-Identifier: Apache-2.0
# cython: language_level=3, boundscheck=False, wraparound=False
"""Canonical JSON encoding (compiled).

Twin of ``edgecoder/speedups/_pure/canonical.py``: one pass that checks the data
model and writes the bytes ``json.dumps(obj, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` would write, UTF-8 encoded.
"""

from edgecoder.errors import CanonicalError

__all__ = ("MAX_DEPTH", "MAX_SAFE_INTEGER", "encode")

MAX_DEPTH = 32
MAX_SAFE_INTEGER = 2**53 - 1

cdef int _MAX_DEPTH = 32
cdef object _MAX_SAFE = 2**53 - 1
cdef object _MIN_SAFE = -(2**53 - 1)

# JSON escapes for the code points below 0x20, as the json module writes them.
cdef list _ESCAPES = ["\\u%04x" % i for i in range(32)]
_ESCAPES[0x08] = "\\b"
_ESCAPES[0x09] = "\\t"
_ESCAPES[0x0A] = "\\n"
_ESCAPES[0x0C] = "\\f"
_ESCAPES[0x0D] = "\\r"


cdef inline bint _needs_escape(str s):
    cdef Py_UCS4 ch
    for ch in s:
        if ch < 0x20 or ch == 0x22 or ch == 0x5C:
            return True
    return False


cdef void _string(list out, str s) except *:
    cdef Py_UCS4 ch
    cdef list parts
    if not _needs_escape(s):
        out.append('"')
        out.append(s)
        out.append('"')
        return
    parts = ['"']
    for ch in s:
        if ch < 0x20:
            parts.append(_ESCAPES[<Py_ssize_t>ch])
        elif ch == 0x22:
            parts.append('\\"')
        elif ch == 0x5C:
            parts.append("\\\\")
        else:
            parts.append(chr(ch))
    parts.append('"')
    out.append("".join(parts))


cdef void _value(list out, object obj, int depth) except *:
    cdef type kind = type(obj)
    cdef bint first
    if kind is str:
        _string(out, <str>obj)
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif kind is int:
        if obj > _MAX_SAFE or obj < _MIN_SAFE:
            raise CanonicalError("integers must lie within +/-(2**53 - 1)")
        out.append(int.__repr__(obj))
    elif kind is dict:
        if depth >= _MAX_DEPTH:
            raise CanonicalError(f"nesting deeper than {_MAX_DEPTH} levels")
        for key in <dict>obj:
            if type(key) is not str:
                raise CanonicalError("object keys must be strings")
        out.append("{")
        first = True
        for key in sorted(<dict>obj):
            if not first:
                out.append(",")
            first = False
            _string(out, <str>key)
            out.append(":")
            _value(out, (<dict>obj)[key], depth + 1)
        out.append("}")
    elif kind is list or kind is tuple:
        if depth >= _MAX_DEPTH:
            raise CanonicalError(f"nesting deeper than {_MAX_DEPTH} levels")
        out.append("[")
        first = True
        for item in obj:
            if not first:
                out.append(",")
            first = False
            _value(out, item, depth + 1)
        out.append("]")
    elif kind is float:
        raise CanonicalError("floats are not allowed in canonical data; use integers")
    else:
        raise CanonicalError(f"type {kind.__name__} has no canonical encoding")


def encode(obj):
    """Return the canonical UTF-8 bytes of ``obj`` (see the pure twin for the contract)."""
    cdef list out = []
    _value(out, obj, 0)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:
        raise CanonicalError("strings must be valid Unicode (lone surrogate found)") from None
