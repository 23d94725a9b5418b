"""Mesh request envelopes through both implementations: every refusal code, cross-checks."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.conftest import Core

NOW = 1_800_000_000_000
SEED_A = bytes(range(32))
SEED_B = bytes(range(1, 33))


def _verifier(core: Core, own: str, **overrides: Any) -> Any:
    settings = dict(skew_ms=30_000, max_body=1 << 20, sender_rate=100.0, sender_burst=20.0,
                    address_rate=1000.0, address_burst=200.0, replay_capacity=10_000)  # fmt: skip
    settings.update(overrides)
    return core.envelope.RequestVerifier(own, **settings)


def _parties(core: Core) -> tuple[bytes, bytes, str, str]:
    pk_a, sk_a = core.signing.seed_keypair(SEED_A)
    pk_b, _ = core.signing.seed_keypair(SEED_B)
    return sk_a, pk_a, core.envelope.node_id_of(pk_a), core.envelope.node_id_of(pk_b)


def _request(core: Core, signed_body: bytes = b'{"ping":1}', **changes: Any) -> dict[str, Any]:
    """A genuine request, then ``changes`` applied on top (so ``body=`` tampers with it)."""
    sk_a, pk_a, _, b_id = _parties(core)
    body = signed_body
    headers = core.envelope.sign_request(sk_a, pk_a, "POST", "/mesh/ping?x=1", b_id, body, NOW)
    fields = {k[5:].replace("-", "_"): v for k, v in headers.items()}
    request = {"method": "POST", "target": "/mesh/ping?x=1", "body": body,
               "address": "10.0.0.1", "now_ms": NOW, **fields}  # fmt: skip
    request.update(changes)
    return request


def _check(verifier: Any, request: dict[str, Any]) -> str:
    r = request
    return str(verifier.check(
        r["method"], r["target"], r["sender"], r["key"], r["timestamp"], r["nonce"],
        r["body_sha256"], r["recipient"], r["signature"], r["body"], r["address"], r["now_ms"],
    ))  # fmt: skip


def test_node_id_matches_the_identity_module(core: Core) -> None:
    from edgecoder.security.identity import derive_node_id

    _, pk_a, a_id, _ = _parties(core)
    assert a_id == derive_node_id(pk_a)


def test_authentic_request_passes_once(core: Core) -> None:
    _, _, _, b_id = _parties(core)
    verifier = _verifier(core, b_id)
    request = _request(core)
    assert _check(verifier, request) == ""
    assert _check(verifier, request) == "replay"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"body": b"x" * ((1 << 20) + 1)}, "too_large"),
        ({"nonce": None}, "missing_header"),
        ({"signature": None}, "missing_header"),
        ({"nonce": "xyz"}, "bad_header"),
        ({"timestamp": "-5"}, "bad_header"),
        ({"key": "AB" * 32}, "bad_header"),
        ({"sender": "A" * 32}, "bad_header"),
        ({"recipient": "a" * 32}, "wrong_recipient"),
        ({"now_ms": NOW + 30_001}, "skew"),
        ({"now_ms": NOW - 30_001}, "skew"),
        ({"body": b'{"ping":2}'}, "body_hash"),
        ({"target": "/mesh/ping?x=2"}, "bad_signature"),
        ({"method": "PUT"}, "bad_signature"),
        ({"signature": "00" * 64}, "bad_signature"),
        ({"key": "11" * 32}, "bad_key"),
    ],
)
def test_each_refusal_has_its_code(core: Core, change: dict[str, Any], code: str) -> None:
    _, _, _, b_id = _parties(core)
    verifier = _verifier(core, b_id)
    assert _check(verifier, _request(core, **change)) == code
    # A refused request leaves no trace: the genuine one still passes afterwards.
    assert _check(verifier, _request(core)) == ""


def test_blacklist_rate_limit_and_restart_window(core: Core) -> None:
    _, _, a_id, b_id = _parties(core)
    verifier = _verifier(core, b_id, sender_burst=2.0, sender_rate=1.0)
    verifier.blacklist.add(a_id)
    assert _check(verifier, _request(core)) == "blacklisted"
    verifier.blacklist.clear()
    assert [_check(verifier, _request(core)) for _ in range(3)] == ["", "", "rate_limited"]
    # Another address has its own bucket: a flood from one place cannot starve another.
    assert _check(verifier, _request(core, address="10.0.0.2")) == ""
    fresh = _verifier(core, b_id)
    fresh.not_before_ms = NOW + 1
    assert _check(fresh, _request(core)) == "replay"


def test_sign_with_one_verify_with_the_other(pure_core: Core, compiled_core: Core) -> None:
    for signer, checker in ((pure_core, compiled_core), (compiled_core, pure_core)):
        _, _, _, b_id = _parties(signer)
        assert _check(_verifier(checker, b_id), _request(signer)) == ""
    fixed = {"nonce": "ab" * 16}
    sk, pk, _, b_id = _parties(pure_core)
    assert pure_core.envelope.sign_request(sk, pk, "GET", "/x", b_id, b"", NOW, **fixed) == (
        compiled_core.envelope.sign_request(sk, pk, "GET", "/x", b_id, b"", NOW, **fixed)
    )


def test_identical_decisions_over_one_trace(pure_core: Core, compiled_core: Core) -> None:
    rng = random.Random(11)
    _, _, _, b_id = _parties(pure_core)
    genuine = [_request(pure_core, signed_body=str(i).encode()) for i in range(60)]
    mutations: list[dict[str, Any]] = [
        {}, {}, {"body": b"tampered"}, {"now_ms": NOW + 40_000}, {"address": "10.9.9.9"},
        {"signature": "0" * 128}, {"recipient": "b" * 32}, {"nonce": None},
    ]  # fmt: skip
    trace = [{**rng.choice(genuine), **rng.choice(mutations)} for _ in range(800)]
    pure = _verifier(pure_core, b_id, sender_burst=30.0, sender_rate=5.0)
    compiled = _verifier(compiled_core, b_id, sender_burst=30.0, sender_rate=5.0)
    decisions = [(_check(pure, r), _check(compiled, r)) for r in trace]
    assert all(a == b for a, b in decisions)
    assert {a for a, _ in decisions} >= {"", "replay", "body_hash", "skew", "rate_limited"}
