"""Following peers' chains: what to fetch, what to take, and forks (docs/ledger.md §6-7)."""

from __future__ import annotations

import hashlib

import pytest

from edgecoder.errors import BlacklistError, LedgerError
from edgecoder.ledger.chains import Fork, PeerChains, Wanted
from edgecoder.ledger.entries import ESCROW, TREASURY, new_entry
from edgecoder.security.blacklist import verify_evidence
from edgecoder.security.identity import NodeIdentity
from edgecoder.wire import canonical
from tests.unit.test_ledger_core import TS, VOUCH, Chain, vouched

ALICE = NodeIdentity(bytes(range(32)))
BOB = NodeIdentity(bytes(range(1, 33)))


def alice_chain(holds: int = 3) -> Chain:
    chain = Chain(ALICE, allowance=1000)
    chain.add("allowance", 1000, TREASURY, VOUCH)
    for i in range(holds):
        chain.add("hold", 10, ESCROW, f"t{i}")
    return chain


def test_a_chain_is_fetched_past_what_is_held_and_taken_in_order() -> None:
    chain = alice_chain()
    peers = PeerChains(vouched(1000))
    node = ALICE.node_id
    head = chain.entries[-1]
    assert peers.wanted({node: (4, head.hash_hex)}) == [Wanted(node, 0, 4)]
    taken, fork = peers.accept(node, ALICE.public_key, chain.entries[:2], {})
    assert (len(taken), fork) == (2, None)
    assert peers.wanted({node: (4, head.hash_hex)}) == [Wanted(node, 2, 4)]
    # A segment overlapping what is held takes only what is new.
    held = {seq: chain.entries[seq - 1] for seq in peers.overlap(node, chain.entries)}
    taken, fork = peers.accept(node, ALICE.public_key, chain.entries, held)
    assert [e.entry.seq for e in taken] == [3, 4]
    assert peers.state(node).held == 30
    assert peers.wanted({node: (4, head.hash_hex)}) == []


def test_what_does_not_continue_the_chain_or_is_not_the_authors_is_refused() -> None:
    chain = alice_chain()
    node = ALICE.node_id
    peers = PeerChains(vouched(1000))
    with pytest.raises(LedgerError) as caught:
        peers.accept(node, ALICE.public_key, chain.entries[1:], {})
    assert caught.value.code == "bad_link"
    with pytest.raises(LedgerError) as caught:
        peers.accept(node, BOB.public_key, chain.entries, {})  # not signed by that key
    assert caught.value.code == "bad_chain"
    with pytest.raises(LedgerError) as caught:
        peers.accept(BOB.node_id, ALICE.public_key, chain.entries, {})
    assert caught.value.code == "wrong_author"
    assert peers.state(node).seq == 0
    # An allowance without a vouch this node knows breaks the rules: nothing is taken.
    strict = PeerChains(lambda ref, n: None)
    with pytest.raises(LedgerError) as caught:
        strict.accept(node, ALICE.public_key, chain.entries, {})
    assert caught.value.code == "no_vouch"
    assert strict.state(node).seq == 0


def test_a_second_entry_signed_for_a_held_place_is_a_fork_anyone_can_prove() -> None:
    chain = alice_chain(holds=1)
    node = ALICE.node_id
    peers = PeerChains(vouched(1000))
    peers.accept(node, ALICE.public_key, chain.entries, {})
    # Alice signs another entry 2: a fork. Its head says so.
    other = new_entry(ALICE, chain.entries[0], kind="hold", amount=999, party=ESCROW,
                      ref="elsewhere", ts=TS)  # fmt: skip
    assert peers.wanted({node: (2, other.hash_hex)}) == [Wanted(node, 1, 2)]
    held = {2: chain.entries[1]}
    taken, fork = peers.accept(node, ALICE.public_key, [other], held)
    assert taken == []
    assert fork == Fork(chain.entries[1], other)
    evidence = fork.evidence(ALICE.public_key)
    verify_evidence(node, _wrapped(evidence))  # holds, checked alone
    with pytest.raises(BlacklistError):
        verify_evidence(BOB.node_id, _wrapped(evidence))  # not Bob's fork
    same = {"key": ALICE.public_key.hex(), "first": chain.entries[1].as_json(),
            "second": chain.entries[1].as_json()}  # fmt: skip
    with pytest.raises(BlacklistError):
        verify_evidence(node, _wrapped(same))


def _wrapped(data: dict[str, object]) -> dict[str, object]:
    return {"kind": "ledger_fork", "sha256": hashlib.sha256(canonical.encode(data)).hexdigest(),
            "data": data}  # fmt: skip
