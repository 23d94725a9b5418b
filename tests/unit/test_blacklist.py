"""The blacklist audit chain: evidence anyone can check, and a chain that shows tampering."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from edgecoder.errors import BlacklistError
from edgecoder.security.blacklist import Blacklist, blacklist_entry, chain_head, verify_chain
from edgecoder.security.identity import NodeIdentity
from edgecoder.speedups import envelope
from edgecoder.wire import canonical
from edgecoder.wire.records import sign_record

NOW = 1_800_000_000_000
JUDGE = NodeIdentity(bytes(range(32)))
CHEAT = NodeIdentity(bytes(range(1, 33)))
HONEST = NodeIdentity(bytes(range(2, 34)))


def fork_evidence(cheat: NodeIdentity = CHEAT) -> dict[str, Any]:
    """Two ledger entries with one sequence number: a fork."""
    first = sign_record(cheat, "ledger_entry", 5, {"amount": 10}, NOW, 60_000)
    second = sign_record(cheat, "ledger_entry", 5, {"amount": 99}, NOW, 60_000)
    return {"first": first.to_wire(), "second": second.to_wire()}


def forged_relay_evidence(relay: NodeIdentity) -> dict[str, Any]:
    genuine = sign_record(HONEST, "advert", 1, {"load": 1}, NOW, 60_000)
    forged = {**genuine.to_wire(), "body": {"load": 0}}  # altered after signing
    body = json.dumps(forged)
    headers = envelope.sign_request(relay.secret_key, relay.public_key, "POST", "/mesh/gossip",
                                    JUDGE.node_id, body.encode(), NOW)  # fmt: skip
    return {"method": "POST", "target": "/mesh/gossip", "headers": headers, "body": body}


def chain_of(count: int) -> list[Any]:
    entries: list[Any] = []
    for i in range(count):
        cheat = NodeIdentity(bytes([i + 10]) * 32)
        entries.append(blacklist_entry(JUDGE, entries, cheat.node_id, "ledger fork",
                                       "equivocation", fork_evidence(cheat), NOW))  # fmt: skip
    return entries


def test_fork_evidence_blacklists() -> None:
    blacklist = Blacklist()
    entry = blacklist_entry(JUDGE, [], CHEAT.node_id, "ledger fork", "equivocation",
                            fork_evidence(), NOW)  # fmt: skip
    blacklist.accept(entry)
    assert blacklist.is_blacklisted(CHEAT.node_id)
    assert not blacklist.is_blacklisted(HONEST.node_id)
    assert blacklist.evidence_against(CHEAT.node_id) == [entry]


def test_forged_relay_evidence_blacklists_the_relay() -> None:
    entry = blacklist_entry(JUDGE, [], CHEAT.node_id, "relayed a forgery", "forged_relay",
                            forged_relay_evidence(CHEAT), NOW)  # fmt: skip
    blacklist = Blacklist()
    blacklist.accept(entry)
    assert blacklist.is_blacklisted(CHEAT.node_id)


@pytest.mark.parametrize(
    ("accused", "kind", "data"),
    [
        (HONEST.node_id, "equivocation", fork_evidence()),  # evidence is against someone else
        (CHEAT.node_id, "equivocation",
         {"first": fork_evidence()["first"], "second": fork_evidence()["first"]}),  # same record
        (CHEAT.node_id, "equivocation", {"first": fork_evidence()["first"],
         "second": {**fork_evidence()["second"], "body": {"amount": 1}}}),  # forged second
        (HONEST.node_id, "forged_relay", forged_relay_evidence(CHEAT)),  # signed by another
        (CHEAT.node_id, "gossip", fork_evidence()),
    ],
)  # fmt: skip
def test_evidence_that_does_not_hold_is_refused(accused: str, kind: str, data: Any) -> None:
    entry = blacklist_entry(JUDGE, [], accused, "accusation", kind, data, NOW)
    with pytest.raises(BlacklistError, match="bad_evidence"):
        Blacklist().accept(entry)


def test_genuine_relay_is_not_evidence() -> None:
    genuine = sign_record(HONEST, "advert", 1, {"load": 1}, NOW, 60_000)
    body = json.dumps(genuine.to_wire())
    headers = envelope.sign_request(CHEAT.secret_key, CHEAT.public_key, "POST", "/mesh/gossip",
                                    JUDGE.node_id, body.encode(), NOW)  # fmt: skip
    data = {"method": "POST", "target": "/mesh/gossip", "headers": headers, "body": body}
    entry = blacklist_entry(JUDGE, [], CHEAT.node_id, "x", "forged_relay", data, NOW)
    with pytest.raises(BlacklistError, match="genuine"):
        Blacklist().accept(entry)


def test_evidence_hash_must_match() -> None:
    entry = blacklist_entry(JUDGE, [], CHEAT.node_id, "x", "equivocation", fork_evidence(), NOW)
    evidence = {**entry.body["evidence"], "sha256": "00" * 32}
    tampered = sign_record(JUDGE, "blacklist", 0, {**entry.body, "evidence": evidence}, NOW, 1000)
    with pytest.raises(BlacklistError, match="evidence_hash"):
        Blacklist().accept(tampered)


def test_chain_order_is_enforced_on_accept() -> None:
    entries = chain_of(3)
    blacklist = Blacklist()
    with pytest.raises(BlacklistError, match="order"):
        blacklist.accept(entries[1])
    for entry in entries:
        blacklist.accept(entry)
    with pytest.raises(BlacklistError, match="order"):
        blacklist.accept(entries[2])


def test_chain_verification_finds_edits_reorders_and_removals() -> None:
    entries = chain_of(5)
    head = chain_head(JUDGE, entries, NOW)
    assert verify_chain(entries, head) == -1
    edited = list(entries)
    edited[2] = dataclasses.replace(entries[2], body={**entries[2].body, "reason": "edited"})
    assert verify_chain(edited, head) == 2
    reordered = [entries[0], entries[2], entries[1], *entries[3:]]
    assert verify_chain(reordered, head) == 1
    assert verify_chain(entries[:2] + entries[3:], head) == 2
    assert verify_chain(entries[:4], head) == 4  # tail removed: caught by the signed head
    assert canonical.decode(entries[0].wire_bytes()) == entries[0].to_wire()


def test_evidence_with_a_non_string_kind_is_refused_not_a_crash() -> None:
    from edgecoder.security.blacklist import verify_evidence

    with pytest.raises(BlacklistError) as caught:
        verify_evidence("", {"kind": []})
    assert caught.value.code == "bad_evidence"
