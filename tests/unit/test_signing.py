"""Ed25519 through both implementations: RFC 8032 vectors, cross-verification, bad input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import Core

# RFC 8032, section 7.1, TEST 1 and TEST 3.
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


@pytest.mark.parametrize(("seed", "public", "message", "signature"), RFC8032)
def test_rfc8032_vectors(core: Core, seed: str, public: str, message: str, signature: str) -> None:
    pk, sk = core.signing.seed_keypair(bytes.fromhex(seed))
    assert pk.hex() == public
    assert core.signing.sign(sk, bytes.fromhex(message)).hex() == signature
    assert core.signing.verify(pk, bytes.fromhex(message), bytes.fromhex(signature))


def test_rejects_altered_message_signature_or_key(core: Core) -> None:
    pk, sk = core.signing.seed_keypair(bytes(range(32)))
    other_pk, _ = core.signing.seed_keypair(bytes(32))
    sig = core.signing.sign(sk, b"grant task 7")
    assert core.signing.verify(pk, b"grant task 7", sig)
    assert not core.signing.verify(pk, b"grant task 8", sig)
    assert not core.signing.verify(other_pk, b"grant task 7", sig)
    assert not core.signing.verify(pk, b"grant task 7", bytes([sig[0] ^ 1]) + sig[1:])
    assert not core.signing.verify(pk, b"grant task 7", sig[:63])


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.seed_keypair(b"short"), ValueError),
        (lambda s: s.seed_keypair("x" * 32), TypeError),
        (lambda s: s.sign(b"k" * 63, b"m"), ValueError),
        (lambda s: s.sign(b"k" * 64, "m"), TypeError),
        (lambda s: s.verify(b"k" * 31, b"m", b"s" * 64), ValueError),
        (lambda s: s.verify(b"k" * 32, bytearray(b"m"), b"s" * 64), TypeError),
    ],
)
def test_bad_arguments_raise_the_same_errors(core: Core, call: object, error: type) -> None:
    with pytest.raises(error):
        call(core.signing)  # type: ignore[operator]


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=512))
def test_sign_in_one_verify_in_the_other(
    pure_core: Core, compiled_core: Core, seed: bytes, message: bytes
) -> None:
    pk, sk = pure_core.signing.seed_keypair(seed)
    assert compiled_core.signing.seed_keypair(seed) == (pk, sk)
    from_pure = pure_core.signing.sign(sk, message)
    from_compiled = compiled_core.signing.sign(sk, message)
    assert from_pure == from_compiled  # Ed25519 is deterministic
    assert compiled_core.signing.verify(pk, message, from_pure)
    assert pure_core.signing.verify(pk, message, from_compiled)
