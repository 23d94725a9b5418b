"""Hash-chain links through both implementations."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import Core


def _build(core: Core, bodies: list[bytes]) -> list[bytes]:
    hashes, prev = [], core.chain.GENESIS
    for body in bodies:
        prev = core.chain.link(prev, body)
        hashes.append(prev)
    return hashes


def test_link_is_domain_separated_sha256(core: Core) -> None:
    prev = bytes(range(32))
    expected = hashlib.sha256(b"edgecoder/chain/v1\x00" + prev + b"entry").digest()
    assert core.chain.link(prev, b"entry") == expected


def test_verify_finds_the_first_broken_link(core: Core) -> None:
    bodies = [f"entry {i}".encode() for i in range(50)]
    hashes = _build(core, bodies)
    assert core.chain.verify(core.chain.GENESIS, bodies, hashes) == -1
    assert core.chain.verify(core.chain.GENESIS, [], []) == -1
    tampered = list(bodies)
    tampered[17] = b"entry 17, altered"
    assert core.chain.verify(core.chain.GENESIS, tampered, hashes) == 17
    reordered = [*bodies[:5], bodies[6], bodies[5], *bodies[7:]]
    assert core.chain.verify(core.chain.GENESIS, reordered, hashes) == 5
    # A segment verifies from the hash before it, so segments check independently.
    assert core.chain.verify(hashes[19], bodies[20:], hashes[20:]) == -1


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((b"x" * 31, [], []), ValueError),
        ((bytes(32), [b"a"], []), ValueError),
        ((bytes(32), [b"a"], [b"h" * 31]), ValueError),
        ((bytes(32), ["a"], [bytes(32)]), TypeError),
        ((bytes(32), [b"a", "b"], [bytes(32), bytes(32)]), TypeError),
    ],
)
def test_bad_arguments_raise_the_same_errors(core: Core, args: tuple, error: type) -> None:
    with pytest.raises(error):
        core.chain.verify(*args)


@given(st.lists(st.binary(max_size=200), max_size=20))
def test_both_implementations_build_the_same_chain(
    pure_core: Core, compiled_core: Core, bodies: list[bytes]
) -> None:
    hashes = _build(pure_core, bodies)
    assert _build(compiled_core, bodies) == hashes
    assert compiled_core.chain.verify(compiled_core.chain.GENESIS, bodies, hashes) == -1
