"""The ledger's pure core: pricing, the entry format and the chain rules (docs/ledger.md)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecoder.errors import LedgerError
from edgecoder.ledger import entries as entries_module
from edgecoder.ledger.entries import (
    ESCROW,
    GENESIS_HASH,
    TREASURY,
    SignedEntry,
    new_entry,
    parse_entry,
    verify_segment,
)
from edgecoder.ledger.pricing import format_mc, price_mc
from edgecoder.ledger.rules import ChainState
from edgecoder.security.identity import NodeIdentity
from tests.conftest import Core

ALICE = NodeIdentity(bytes(range(32)))
BOB = NodeIdentity(bytes(range(1, 33)))
VOUCH = "ab" * 32
TS = 1_800_000_000_000


def vouched(amount: int) -> Any:
    """A vouch lookup that grants ``amount`` to anyone naming :data:`VOUCH`."""
    return lambda ref, node: amount if ref == VOUCH else None


class Chain:
    """A chain being written by ``identity``, checked by the rules as it grows."""

    def __init__(self, identity: NodeIdentity = ALICE, allowance: int = 1000) -> None:
        self.identity = identity
        self.state = ChainState(identity.node_id, vouched(allowance))
        self.entries: list[SignedEntry] = []

    def add(self, kind: str, amount: int, party: str, ref: str, total: int = 0) -> SignedEntry:
        after = self.entries[-1] if self.entries else None
        entry = new_entry(self.identity, after, kind=kind, amount=amount, party=party, ref=ref,
                          total=total, ts=TS)  # fmt: skip
        self.state.apply(entry)
        self.entries.append(entry)
        return entry


# -- pricing ------------------------------------------------------------------------------


def test_a_price_weighs_output_four_times_and_scales_by_size_and_multiplier() -> None:
    assert price_mc(100, 50, "xs", 100) == 300
    assert price_mc(100, 50, "m", 100) == 1200
    assert price_mc(100, 50, "xs", 250) == 750
    assert price_mc(1, 0, "xs", 1) == 1  # rounded up: never free
    assert price_mc(0, 0, "xl", 100) == 0
    assert price_mc(10, 0, "?", 100) == price_mc(10, 0, "m", 100)
    with pytest.raises(ValueError, match="negative"):
        price_mc(-1, 0, "xs", 100)
    with pytest.raises(ValueError, match="multiplier"):
        price_mc(1, 0, "xs", 0)


def test_credits_are_shown_exactly() -> None:
    assert [format_mc(n) for n in (0, 5, 12345, -1500)] == ["0.000", "0.005", "12.345", "-1.500"]


# -- entries ------------------------------------------------------------------------------


def test_an_entry_round_trips_and_any_change_breaks_its_hash(core: Core) -> None:
    chain = Chain()
    first = chain.add("allowance", 1000, TREASURY, VOUCH)
    second = chain.add("hold", 300, ESCROW, "t1")
    assert first.entry.prev == GENESIS_HASH
    assert second.entry.prev == first.hash_hex
    for entry in (first, second):
        assert parse_entry(entry.as_json()) == entry
    tampered = first.as_json()
    tampered["body"]["amount"] = 9000
    with pytest.raises(LedgerError) as caught:
        parse_entry(tampered)
    assert caught.value.code == "bad_hash"


def test_a_segment_verifies_on_both_cores_and_names_the_first_bad_entry(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(entries_module, "chain", core.chain)
    chain = Chain()
    chain.add("allowance", 1000, TREASURY, VOUCH)
    for i in range(5):
        chain.add("hold", 10, ESCROW, f"t{i}")
    key = ALICE.public_key
    assert verify_segment(GENESIS_HASH, chain.entries, key) == -1
    assert verify_segment(chain.entries[2].hash_hex, chain.entries[3:], key) == -1
    assert verify_segment(GENESIS_HASH, chain.entries, BOB.public_key) == 0  # not the author
    forged = dataclasses.replace(chain.entries[4], sig=bytes(64))
    assert verify_segment(GENESIS_HASH, [*chain.entries[:4], forged], key) == 4
    assert verify_segment(GENESIS_HASH, chain.entries[1:], key) == 0  # a gap


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [("v", 2, "bad_version"), ("kind", "mint", "bad_kind"), ("party", "me", "bad_party"),
     ("ref", "", "bad_entry"), ("seq", 0, "bad_entry"), ("amount", 2**60, "bad_amount"),
     ("prev", "00", "bad_entry"), ("ts", -1, "bad_entry")],
)  # fmt: skip
def test_a_malformed_entry_is_refused_with_its_code(field: str, value: object, code: str) -> None:
    document = Chain().add("allowance", 1000, TREASURY, VOUCH).as_json()
    document["body"][field] = value
    with pytest.raises(LedgerError) as caught:
        parse_entry(document)
    assert caught.value.code == code


@pytest.mark.parametrize(
    "document",
    [None, [], {"body": {}}, {"body": {}, "hash": "", "sig": ""},
     {"body": {"v": 1}, "hash": "00" * 32, "sig": "00" * 64}],
)  # fmt: skip
def test_what_is_not_an_entry_is_refused(document: object) -> None:
    with pytest.raises(LedgerError) as caught:
        parse_entry(document)
    assert caught.value.code == "bad_entry"


# -- the chain rules ----------------------------------------------------------------------


def refused(chain: Chain, kind: str, amount: int, party: str, ref: str, total: int = 0) -> str:
    """The code with which the chain refuses that entry (its state unchanged)."""
    before = dataclasses.replace(chain.state, holds=dict(chain.state.holds),
                                 totals=dict(chain.state.totals))  # fmt: skip
    with pytest.raises(LedgerError) as caught:
        chain.add(kind, amount, party, ref, total)
    assert (chain.state.available, chain.state.held, chain.state.seq) == (
        before.available, before.held, before.seq)  # fmt: skip
    return caught.value.code


def test_an_allowance_needs_a_vouch_for_its_amount_and_comes_once() -> None:
    chain = Chain(allowance=1000)
    assert refused(chain, "allowance", 1000, TREASURY, "cd" * 32) == "no_vouch"
    assert refused(chain, "allowance", 999_999, TREASURY, VOUCH) == "no_vouch"
    assert refused(chain, "allowance", 1000, BOB.node_id, VOUCH) == "bad_party"
    chain.add("allowance", 1000, TREASURY, VOUCH)
    assert refused(chain, "allowance", 1000, TREASURY, VOUCH) == "second_allowance"
    assert (chain.state.available, chain.state.allowance) == (1000, 1000)


def test_nothing_spends_held_or_settles_beyond_what_is_available() -> None:
    chain = Chain()
    assert refused(chain, "hold", 1, ESCROW, "t") == "overdraft"
    assert refused(chain, "spend", 1, BOB.node_id, "r", total=1) == "overdraft"
    chain.add("allowance", 1000, TREASURY, VOUCH)
    chain.add("hold", 800, ESCROW, "t1")
    assert (chain.state.available, chain.state.held, chain.state.balance) == (200, 800, 1000)
    assert refused(chain, "hold", 201, ESCROW, "t2") == "overdraft"
    assert refused(chain, "settle", 201, TREASURY, "proof") == "overdraft"
    assert refused(chain, "adjust", -201, TREASURY, "ab" * 32) == "overdraft"
    chain.add("release", 800, ESCROW, "t1")
    chain.add("spend", 300, BOB.node_id, "r1", total=300)
    assert (chain.state.available, chain.state.held) == (700, 0)


def test_a_task_is_held_once_and_released_whole() -> None:
    chain = Chain()
    chain.add("allowance", 1000, TREASURY, VOUCH)
    chain.add("hold", 100, ESCROW, "t1")
    assert refused(chain, "hold", 100, ESCROW, "t1") == "held_twice"
    assert refused(chain, "release", 50, ESCROW, "t1") == "bad_release"
    assert refused(chain, "release", 100, ESCROW, "t2") == "bad_release"
    assert refused(chain, "hold", 100, BOB.node_id, "t3") == "bad_party"
    chain.add("release", 100, ESCROW, "t1")
    assert refused(chain, "release", 100, ESCROW, "t1") == "bad_release"
    assert refused(chain, "hold", 100, ESCROW, "t1") == "held_twice"  # even once released


def test_earn_and_spend_totals_are_cumulative_per_counterparty() -> None:
    worker, origin = Chain(BOB), Chain(ALICE)
    origin.add("allowance", 1000, TREASURY, VOUCH)
    origin.add("spend", 100, BOB.node_id, "r1", total=100)
    origin.add("spend", 50, BOB.node_id, "r2", total=150)
    # The worker never got r1: r2 restates the total, and it earns both at once.
    worker.add("earn", 150, ALICE.node_id, "r2", total=150)
    assert worker.state.total("earn", ALICE.node_id) == origin.state.total("spend", BOB.node_id)
    assert refused(worker, "earn", 10, ALICE.node_id, "r3", total=150) == "bad_total"
    assert refused(worker, "earn", 10, BOB.node_id, "r3", total=10) == "bad_party"  # itself
    assert refused(worker, "earn", 10, TREASURY, "r3", total=10) == "bad_party"
    assert refused(worker, "hold", 10, ESCROW, "t", total=10) == "bad_total"
    assert refused(worker, "earn", 0, ALICE.node_id, "r3", total=150) == "bad_amount"
    assert refused(worker, "adjust", 0, TREASURY, "ab" * 32) == "bad_amount"
    assert worker.state.available == 150


def test_a_chain_is_its_authors_and_continues_without_gaps() -> None:
    chain = Chain()
    first = chain.add("allowance", 1000, TREASURY, VOUCH)
    state = ChainState(BOB.node_id, vouched(1000))
    with pytest.raises(LedgerError) as caught:
        state.apply(first)
    assert caught.value.code == "wrong_author"
    second = new_entry(ALICE, first, kind="hold", amount=1, party=ESCROW, ref="t", ts=TS)
    fresh = ChainState(ALICE.node_id, vouched(1000))
    with pytest.raises(LedgerError) as caught:
        fresh.apply(second)  # entry 2 before entry 1
    assert caught.value.code == "bad_link"
    assert ChainState.fold(ALICE.node_id, [first, second], vouched(1000)).held == 1


# -- any sequence of operations -----------------------------------------------------------

operations = st.lists(
    st.tuples(
        st.sampled_from(["hold", "release", "spend", "earn", "settle", "adjust"]),
        st.integers(-50, 400),
        st.integers(0, 5),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_no_sequence_of_entries_overdraws_or_loses_track_of_holds(
    ops: list[tuple[str, int, int]],
) -> None:
    chain = Chain(allowance=500)
    chain.add("allowance", 500, TREASURY, VOUCH)
    effect = 500
    for kind, amount, n in ops:
        party = {"spend": BOB.node_id, "earn": BOB.node_id, "settle": TREASURY,
                 "adjust": TREASURY}.get(kind, ESCROW)  # fmt: skip
        ref = f"t{n}" if kind in ("hold", "release") else "ab" * 32
        total = chain.state.total(kind, party) + amount if kind in ("earn", "spend") else 0
        try:
            chain.add(kind, amount, party, ref, total)
        except LedgerError:
            continue
        sign = {"earn": 1, "release": 1, "adjust": 1}.get(kind, -1)
        effect += sign * amount
    state = chain.state
    assert state.available >= 0
    assert state.available == effect
    assert state.held == sum(state.holds.values()) >= 0
    # The same chain, folded afresh from its entries, says the same.
    again = ChainState.fold(ALICE.node_id, chain.entries, vouched(500))
    assert (again.available, again.held, again.head) == (state.available, state.held, state.head)
    assert verify_segment(GENESIS_HASH, chain.entries, ALICE.public_key) == -1
