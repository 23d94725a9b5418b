"""Signed records, the record store, and key rotation."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgecoder.errors import RecordError
from edgecoder.security.identity import NodeIdentity
from edgecoder.security.rotation import KeyRotations, rotation_record
from edgecoder.wire.records import RecordStore, parse_record, sign_record, verify_record

NOW = 1_800_000_000_000
ALICE = NodeIdentity(bytes(range(32)))
MALLORY = NodeIdentity(bytes(range(1, 33)))


def advert(seq: int, load: int = 1, author: NodeIdentity = ALICE) -> Any:
    return sign_record(author, "advert", seq, {"load": load, "models": ["gemma3:270m"]},
                       NOW, 60_000)  # fmt: skip


def test_round_trip_through_the_wire() -> None:
    record = advert(3)
    again = parse_record(record.to_wire())
    assert again == record
    verify_record(again, NOW)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"body": {"load": 99, "models": ["gemma3:270m"]}}, "bad_signature"),
        ({"seq": 4}, "bad_signature"),
        ({"author": MALLORY.node_id}, "bad_key"),
        ({"key": MALLORY.public_key.hex()}, "bad_key"),
        ({"issued_ms": NOW + 120_000}, "bad_signature"),
    ],
)
def test_a_relay_cannot_alter_a_record(change: dict[str, Any], code: str) -> None:
    altered = dataclasses.replace(advert(3), **change)
    with pytest.raises(RecordError) as error:
        verify_record(altered, NOW)
    assert error.value.code == code


def test_lifetime_checks() -> None:
    with pytest.raises(RecordError, match="expired"):
        verify_record(advert(1), NOW + 60_000)
    future = sign_record(ALICE, "advert", 1, {}, NOW + 120_000, 60_000)
    with pytest.raises(RecordError, match="future"):
        verify_record(future, NOW)
    eternal = sign_record(ALICE, "advert", 1, {}, NOW, 10**12)
    with pytest.raises(RecordError, match="ttl_too_long"):
        verify_record(eternal, NOW)


@pytest.mark.parametrize(
    "wire",
    [
        None,
        {},
        {**advert(1).to_wire(), "extra": 1},
        {**advert(1).to_wire(), "seq": -1},
        {**advert(1).to_wire(), "seq": True},
        {**advert(1).to_wire(), "kind": "gossip"},
        {**advert(1).to_wire(), "sig": "XYZ"},
        {**advert(1).to_wire(), "body": []},
    ],
)
def test_bad_shapes(wire: Any) -> None:
    with pytest.raises(RecordError, match="bad_shape"):
        parse_record(wire)


def test_store_keeps_the_newest_and_spots_equivocation() -> None:
    store = RecordStore()
    assert store.offer(advert(2), NOW) == "new"
    assert store.offer(advert(1), NOW) == "stale"
    assert store.get(ALICE.node_id, "advert").seq == 2  # type: ignore[union-attr]
    assert store.offer(advert(2), NOW) == "duplicate"
    assert store.offer(advert(2, load=7), NOW) == "equivocation"
    assert store.offer(advert(3), NOW) == "new"
    assert store.digest() == {(ALICE.node_id, "advert"): 3}
    assert store.expire(NOW + 60_000) == 1


@given(st.lists(st.integers(0, 20), min_size=1, max_size=30))
def test_store_never_goes_backwards(seqs: list[int]) -> None:
    store = RecordStore()
    for seq in seqs:
        store.offer(advert(seq, load=seq), NOW)
    held = store.get(ALICE.node_id, "advert")
    assert held is not None
    assert held.seq == max(seqs)


def test_key_rotation() -> None:
    new = NodeIdentity(bytes(range(2, 34)))
    rotations = KeyRotations()
    record = rotation_record(ALICE, new, NOW, grace_ms=3_600_000)
    rotation = rotations.accept(record, NOW)
    assert rotations.successor(ALICE.node_id) == new.node_id
    assert not rotations.retired(ALICE.node_id, NOW + 3_599_999)
    assert rotations.retired(ALICE.node_id, NOW + 3_600_000)
    assert rotation.retire_ms == NOW + 3_600_000
    # Without the new key's consent, a rotation to someone else's key is refused.
    hijack = rotation_record(ALICE, MALLORY, NOW, grace_ms=1000)
    forged_body = {**hijack.body, "new_sig": "00" * 64}
    forged = sign_record(ALICE, "key_rotation", 0, forged_body, NOW, 1000)
    with pytest.raises(RecordError, match="bad_signature"):
        rotations.accept(forged, NOW)
