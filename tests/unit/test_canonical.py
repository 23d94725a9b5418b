"""Canonical encoding: both implementations write the same bytes and refuse the same data."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgecoder.errors import CanonicalError
from tests.conftest import Core

SAFE = 2**53 - 1

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-SAFE, max_value=SAFE)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",))), children, max_size=5)
    ),
    max_leaves=30,
)


def _reference(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@given(json_values)
def test_matches_reference_encoding_for_any_valid_value(pure_core: Core, value: Any) -> None:
    assert pure_core.canonical.encode(value) == _reference(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": [True, False, None]}, b'{"a":[true,false,null],"b":1}'),
        ({"é": 1, "z": 2, "A": 3}, '{"A":3,"z":2,"é":1}'.encode()),
        ('tab\tquote"back\\slash\x01\x7f', b'"tab\\tquote\\"back\\\\slash\\u0001\x7f"'),
        ("\u2028😀", '"\u2028😀"'.encode()),
        ((1, 2), b"[1,2]"),
        (-SAFE, b"-9007199254740991"),
        ({}, b"{}"),
        ([], b"[]"),
    ],
)
def test_known_encodings(core: Core, value: Any, expected: bytes) -> None:
    assert core.canonical.encode(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (1.5, "floats"),
        ({"a": [0.0]}, "floats"),
        ({1: "x"}, "keys must be strings"),
        (SAFE + 1, "integers"),
        (-SAFE - 1, "integers"),
        ("\ud800", "surrogate"),
        ({"\udfff": 1}, "surrogate"),
        (b"bytes", "bytes"),
        ({1, 2}, "set"),
    ],
)
def test_refuses_values_without_a_canonical_form(core: Core, value: Any, reason: str) -> None:
    with pytest.raises(CanonicalError, match=reason):
        core.canonical.encode(value)


def test_refuses_nesting_deeper_than_the_limit(core: Core) -> None:
    deep: Any = "leaf"
    for _ in range(core.canonical.MAX_DEPTH):
        deep = [deep]
    assert core.canonical.encode(deep).startswith(b"[[")
    with pytest.raises(CanonicalError, match="nesting"):
        core.canonical.encode([deep])


def test_refuses_subclasses_of_supported_types(core: Core) -> None:
    class Text(str):
        pass

    with pytest.raises(CanonicalError, match="Text"):
        core.canonical.encode({"a": Text("x")})


@given(json_values)
def test_both_implementations_agree(pure_core: Core, compiled_core: Core, value: Any) -> None:
    assert compiled_core.canonical.encode(value) == pure_core.canonical.encode(value)
