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


def _signed(core: Core, count: int) -> tuple[list[bytes], list[bytes], list[bytes], bytes]:
    public, secret = core.signing.seed_keypair(bytes(range(32)))
    bodies = [f"entry {i}".encode() for i in range(count)]
    hashes = _build(core, bodies)
    return bodies, hashes, [core.chain.sign_link(secret, h) for h in hashes], public


def test_signed_chain_detects_edits_reorders_and_forgeries(core: Core) -> None:
    bodies, hashes, sigs, public = _signed(core, 30)
    genesis = core.chain.GENESIS
    assert core.chain.verify_signed(genesis, bodies, hashes, sigs, public) == -1
    forged = list(sigs)
    forged[12] = bytes(64)
    assert core.chain.verify_signed(genesis, bodies, hashes, forged, public) == 12
    swapped = list(sigs)
    swapped[3], swapped[4] = swapped[4], swapped[3]
    assert core.chain.verify_signed(genesis, bodies, hashes, swapped, public) == 3
    other, _ = core.signing.seed_keypair(bytes(32))
    assert core.chain.verify_signed(genesis, bodies, hashes, sigs, other) == 0
    # Removing an entry breaks the link of the one after it.
    del bodies[7], hashes[7], sigs[7]
    assert core.chain.verify_signed(genesis, bodies, hashes, sigs, public) == 7


def test_signed_chain_bad_arguments(core: Core) -> None:
    bodies, hashes, sigs, public = _signed(core, 2)
    with pytest.raises(ValueError, match="differ in length"):
        core.chain.verify_signed(core.chain.GENESIS, bodies, hashes, sigs[:1], public)
    with pytest.raises(ValueError, match="64 bytes"):
        core.chain.verify_signed(core.chain.GENESIS, bodies, hashes, [b"x", b"y"], public)
    with pytest.raises(TypeError):
        core.chain.verify_signed(core.chain.GENESIS, bodies, hashes, sigs, "key")


def test_signed_chains_agree(pure_core: Core, compiled_core: Core) -> None:
    bodies, hashes, sigs, public = _signed(pure_core, 25)
    _, secret = pure_core.signing.seed_keypair(bytes(range(32)))
    assert [compiled_core.chain.sign_link(secret, h) for h in hashes] == sigs
    for index in (None, 0, 9, 24):
        tampered = list(sigs)
        if index is not None:
            tampered[index] = bytes(64)
        assert compiled_core.chain.verify_signed(
            compiled_core.chain.GENESIS, bodies, hashes, tampered, public
        ) == pure_core.chain.verify_signed(
            pure_core.chain.GENESIS, bodies, hashes, tampered, public
        )
