"""Vouches: who may grant an allowance, checked by anyone alone (docs/ledger.md §5)."""

from __future__ import annotations

import dataclasses

import pytest

from edgecoder.errors import LedgerError
from edgecoder.ledger.vouches import MAX_ALLOWANCE_MC, VOUCH_QUOTA, make_vouch, parse_vouch
from edgecoder.security.identity import NodeIdentity

NETWORK_KEY = NodeIdentity(bytes(range(32)))
FOUNDER = NodeIdentity(bytes(range(1, 33)))
NEWCOMER = NodeIdentity(bytes(range(2, 34)))
KEY = NETWORK_KEY.public_key.hex()
TS = 1_800_000_000_000


def founder_vouch(amount: int = 1000, network: str = "office") -> object:
    return make_vouch(NETWORK_KEY, network=network, network_key=KEY, node=FOUNDER.node_id,
                      amount=amount, issued_ms=TS)  # fmt: skip


def test_a_network_vouch_is_valid_in_its_network_only_and_survives_the_wire() -> None:
    vouch = founder_vouch()
    assert vouch.valid_for("office", KEY) is None
    assert parse_vouch(vouch.as_json()) == vouch
    assert parse_vouch(vouch.as_json()).hash == vouch.hash
    assert vouch.valid_for("lab", KEY) == "another network"
    assert vouch.valid_for("office", FOUNDER.public_key.hex()) == "another network"


def test_an_altered_or_oversized_vouch_grants_nothing() -> None:
    vouch = founder_vouch()
    assert dataclasses.replace(vouch, amount=2000).valid_for("office", KEY) == "a bad signature"
    big = founder_vouch(MAX_ALLOWANCE_MC + 1)
    assert "outside" in (big.valid_for("office", KEY) or "")
    # Signed by a node, claiming to be the network's.
    forged = make_vouch(FOUNDER, network="office", network_key=KEY, node=NEWCOMER.node_id,
                        amount=10, issued_ms=TS)  # fmt: skip
    assert forged.valid_for("office", KEY) == "a network vouch not signed by the network key"


def test_a_node_with_standing_vouches_within_its_quota() -> None:
    standing = founder_vouch()
    vouch = make_vouch(FOUNDER, network="office", network_key=KEY, node=NEWCOMER.node_id,
                       amount=500, issued_ms=TS, slot=1, standing=standing)  # fmt: skip
    assert vouch.valid_for("office", KEY) is None
    assert parse_vouch(vouch.as_json()) == vouch
    beyond = make_vouch(FOUNDER, network="office", network_key=KEY, node=NEWCOMER.node_id,
                        amount=500, issued_ms=TS, slot=VOUCH_QUOTA + 1,
                        standing=standing)  # fmt: skip
    assert "slot" in (beyond.valid_for("office", KEY) or "")
    # Standing borrowed from another node's vouch does not count.
    other = make_vouch(NEWCOMER, network="office", network_key=KEY, node=FOUNDER.node_id,
                       amount=500, issued_ms=TS, slot=1, standing=standing)  # fmt: skip
    assert other.valid_for("office", KEY) == "a voucher without standing"


@pytest.mark.parametrize(
    "mutate",
    [lambda d: d.pop("sig"), lambda d: d["body"].update(v=2), lambda d: d["body"].update(amount=-1),
     lambda d: d["body"].update(node="nope"), lambda d: d["body"].update(voucher="x"),
     lambda d: d["body"].update(network_key="zz"), lambda d: d.update(sig="00")],
)  # fmt: skip
def test_a_malformed_vouch_is_refused(mutate: object) -> None:
    document = founder_vouch().as_json()
    mutate(document)  # type: ignore[operator]
    with pytest.raises(LedgerError) as caught:
        parse_vouch(document)
    assert caught.value.code == "bad_vouch"


def test_standing_nests_one_level_only() -> None:
    standing = founder_vouch()
    inner = make_vouch(FOUNDER, network="office", network_key=KEY, node=NEWCOMER.node_id,
                       amount=5, issued_ms=TS, slot=1, standing=standing)  # fmt: skip
    document = inner.as_json()
    document["body"]["standing"] = inner.as_json()  # a vouch whose standing is itself nested
    with pytest.raises(LedgerError, match="network's own"):
        parse_vouch(document)
