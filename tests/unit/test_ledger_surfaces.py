"""The ledger's surfaces (docs/ledger.md §5 and §9): peers' heads, vouching as the network
key's holder or with standing, verifying every chain held, the Balance property.

Through the real admin routes of an in-process node; a peer joins its membership with a
signed peer record, as gossip brings one, and gossips its ledger head.
"""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest

from edgecoder.errors import LedgerError
from edgecoder.events import Event, EventHub, PropertiesChanged
from edgecoder.ledger.book import Ledger, Posting
from edgecoder.ledger.economy import PINNED, Economy, VouchBook
from edgecoder.ledger.entries import ESCROW, TREASURY, SignedEntry, new_entry
from edgecoder.ledger.heads import HEAD, Head
from edgecoder.ledger.verification import verify_chain
from edgecoder.ledger.vouches import NETWORK, VOUCH_QUOTA, Vouch, make_vouch, parse_vouch
from edgecoder.ledger.vouching import Already, AsNetwork, AsStanding, plan_vouch
from edgecoder.security.identity import NodeIdentity
from edgecoder.storage import ledger_rows, node_meta
from edgecoder.storage.database import transaction
from tests.inprocess import InProcessNode

pytestmark = pytest.mark.anyio

KEY = NodeIdentity(bytes(range(32)))
"""A network key."""
ME = NodeIdentity(bytes(range(1, 33))).node_id
OTHER = NodeIdentity(bytes(range(2, 34))).node_id


def _vouch(node: str, amount: int = 1000) -> Vouch:
    return make_vouch(KEY, network="default", network_key=KEY.public_key.hex(), node=node,
                      amount=amount, issued_ms=1)  # fmt: skip


# -- who may vouch (pure) --------------------------------------------------------------


def test_without_an_economy_nobody_vouches() -> None:
    with pytest.raises(LedgerError, match="no_economy"):
        plan_vouch(me=ME, target=OTHER, network_key="", holds_key=False, issued=[],
                   standing=None, target_allowance=None)  # fmt: skip


def test_the_key_holder_vouches_with_the_key_and_never_twice_for_one_node() -> None:
    key = KEY.public_key.hex()
    assert plan_vouch(me=ME, target=OTHER, network_key=key, holds_key=True, issued=[],
                      standing=None, target_allowance=None) == AsNetwork()  # fmt: skip
    earlier = _vouch(OTHER)
    assert plan_vouch(me=ME, target=OTHER, network_key=key, holds_key=True, issued=[earlier],
                      standing=None, target_allowance=None) == Already(earlier)  # fmt: skip
    with pytest.raises(LedgerError, match="has_allowance"):
        plan_vouch(me=ME, target=OTHER, network_key=key, holds_key=True, issued=[],
                   standing=None, target_allowance=500)  # fmt: skip


def test_a_node_with_standing_uses_its_free_slots_then_stops() -> None:
    key, standing = KEY.public_key.hex(), _vouch(ME)
    with pytest.raises(LedgerError, match="no_standing"):
        plan_vouch(me=ME, target=OTHER, network_key=key, holds_key=False, issued=[],
                   standing=None, target_allowance=0)  # fmt: skip
    with pytest.raises(LedgerError, match="own_vouch"):
        plan_vouch(me=ME, target=ME, network_key=key, holds_key=False, issued=[],
                   standing=standing, target_allowance=None)  # fmt: skip
    issued: list[Vouch] = []
    me = NodeIdentity(bytes(range(1, 33)))
    for slot in range(1, VOUCH_QUOTA + 1):
        target = NodeIdentity.generate().node_id
        plan = plan_vouch(me=ME, target=target, network_key=key, holds_key=False, issued=issued,
                          standing=standing, target_allowance=None)  # fmt: skip
        assert plan == AsStanding(slot, standing)
        issued.append(make_vouch(me, network="default", network_key=key, node=target,
                                 amount=10, issued_ms=1, slot=slot, standing=standing))  # fmt: skip
    with pytest.raises(LedgerError, match="vouch_quota"):
        plan_vouch(me=ME, target=OTHER, network_key=key, holds_key=False, issued=issued,
                   standing=standing, target_allowance=None)  # fmt: skip


# -- a peer, as gossip brings it --------------------------------------------------------


async def _join(node: InProcessNode, identity: NodeIdentity, head: Head | None = None) -> None:
    await node.join_peer(identity, head=head.body() if head is not None else None)


def _found(node: InProcessNode) -> NodeIdentity:
    """Make ``node`` the holder of a fresh network key, with its own allowance."""
    key = NodeIdentity.generate()
    economy = node.services.economy
    economy.network_key, economy.book.network_key = key, key.public_key.hex()
    return key


async def _standing(node: InProcessNode, key: NodeIdentity, amount: int = 1000) -> Vouch:
    """Give ``node`` standing under ``key`` (which it does not hold): the key's vouch for
    it, known, and the allowance it grants, claimed."""
    economy = node.services.economy
    pinned = economy.book.network_key = key.public_key.hex()
    await node.services.database.run(lambda c: node_meta.write(c, PINNED, pinned))
    vouch = make_vouch(key, network="default", network_key=key.public_key.hex(),
                       node=node.services.node_id, amount=amount, issued_ms=1)  # fmt: skip
    assert economy.book.add(vouch)
    await node.services.database.run(lambda c: ledger_rows.store_vouch(
        c, vouch.hash, vouch.node, vouch.voucher, vouch.as_json(), 1))  # fmt: skip
    await economy.ledger.append(Posting("allowance", amount, TREASURY, vouch.hash))
    return vouch


async def test_the_peers_route_lists_every_gossiped_head(node: InProcessNode) -> None:
    key = _found(node)
    ours = Head(key.public_key.hex(), 3, "ab" * 32, 900, 100, 1000)
    theirs = Head("cd" * 32, 1, "ef" * 32, 50, 0, 50)
    one, two = NodeIdentity.generate(), NodeIdentity.generate()
    await _join(node, one, ours)
    await _join(node, two, theirs)
    await _join(node, NodeIdentity.generate())  # a peer that announces no head
    async with node.client() as client:
        document = (await client.get("/admin/ledger/peers")).json()
        headers = {"Authorization": f"Bearer {await node.services.access.create_key('u', False)}"}
        assert (await client.get("/admin/ledger/peers", headers=headers)).status_code == 403
    assert document["network_key"] == key.public_key.hex()
    peers = {p["node_id"]: p for p in document["peers"]}
    assert set(peers) == {one.node_id, two.node_id}
    mine = peers[one.node_id]
    assert (mine["seq"], mine["hash"], mine["balance"], mine["held"], mine["available"],
            mine["allowance"], mine["same_economy"], mine["state"], mine["stored_seq"]) == (
        3, "ab" * 32, 900, 100, 800, 1000, True, "alive", 0)  # fmt: skip
    assert peers[two.node_id]["same_economy"] is False
    assert peers[two.node_id]["network_key"] == "cd" * 32


async def test_the_key_holder_vouches_once_per_node_and_announces_it(
    node: InProcessNode,
) -> None:
    newcomer = NodeIdentity.generate().node_id
    async with node.client() as client:
        refused = await client.post("/admin/ledger/vouch", json={"node": newcomer})
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "no_economy"
        key = _found(node)
        first = await client.post("/admin/ledger/vouch", json={"node": newcomer})
        again = await client.post("/admin/ledger/vouch", json={"node": newcomer})
        bad = await client.post("/admin/ledger/vouch", json={"node": "not-a-node"})
        missing = await client.post("/admin/ledger/vouch", json={})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()  # the same vouch, not a second one
    body = first.json()
    assert (body["node"], body["voucher"], body["slot"], body["amount"]) == (
        newcomer, NETWORK, 0, node.services.config.ledger.allowance_mc)  # fmt: skip
    vouch = parse_vouch(body["vouch"])
    assert vouch.hash == body["hash"]
    assert vouch.valid_for("default", key.public_key.hex()) is None
    # Announced in this node's head, where the newcomer finds it.
    record = node.services.mesh.store.get(node.services.node_id, HEAD)
    assert record is not None
    assert [v["body"]["node"] for v in record.body["vouches"]] == [newcomer]
    assert (bad.status_code, bad.json()["error"]["param"]) == (400, "node")
    assert missing.status_code == 400


async def test_a_node_with_standing_vouches_in_its_slots_even_after_a_restart(
    node: InProcessNode,
) -> None:
    services = node.services
    key = NodeIdentity.generate()  # held elsewhere: this node only has standing
    standing = await _standing(node, key)
    funded = NodeIdentity.generate()
    await _join(node, funded, Head(key.public_key.hex(), 1, "ab" * 32, 10, 0, 10))
    newcomers = [NodeIdentity.generate().node_id for _ in range(VOUCH_QUOTA + 1)]
    async with node.client() as client:
        answers = [await client.post("/admin/ledger/vouch", json={"node": n}) for n in newcomers]
        has = await client.post("/admin/ledger/vouch", json={"node": funded.node_id})
        own = await client.post("/admin/ledger/vouch", json={"node": services.node_id})
    granted, beyond = answers[:VOUCH_QUOTA], answers[VOUCH_QUOTA]
    assert [a.status_code for a in granted] == [201] * VOUCH_QUOTA
    vouches = [parse_vouch(a.json()["vouch"]) for a in granted]
    assert [(v.voucher, v.slot, v.standing) for v in vouches] == [
        (services.node_id, slot, standing) for slot in range(1, VOUCH_QUOTA + 1)]  # fmt: skip
    assert all(v.valid_for("default", key.public_key.hex()) is None for v in vouches)
    assert (beyond.status_code, beyond.json()["error"]["code"]) == (409, "vouch_quota")
    assert (has.status_code, has.json()["error"]["code"]) == (409, "has_allowance")
    assert (own.status_code, own.json()["error"]["code"]) == (409, "own_vouch")
    # A restart reads back what this node issued: its head still carries both vouches,
    # and no slot is given out again.
    book = VouchBook(services.config.node.network)
    ledger = Ledger(services.identity, services.database, services.clock, EventHub(),
                    vouches=book.lookup)  # fmt: skip
    restarted = Economy(identity=services.identity, config=services.config,
                        clock=services.clock, database=services.database, events=EventHub(),
                        ledger=ledger, book=book, mesh=services.mesh,
                        transport=services.economy.transport)  # fmt: skip
    await restarted.open()
    assert [v.hash for v in restarted.head().vouches] == [v.hash for v in vouches]
    with pytest.raises(LedgerError, match="vouch_quota"):
        await restarted.vouch_for(newcomers[-1])
    assert (await restarted.vouch_for(newcomers[0])).hash == vouches[0].hash
    restarted.close()


# -- verifying every chain held ---------------------------------------------------------


def _chain(author: NodeIdentity, vouch: Vouch, spend_to: str) -> list[SignedEntry]:
    """A peer's valid chain: its allowance, a hold, its release and a spend."""
    made: list[SignedEntry] = []

    def add(kind: str, amount: int, party: str, ref: str, total: int = 0) -> None:
        made.append(new_entry(author, made[-1] if made else None, kind=kind, amount=amount,
                              party=party, ref=ref, total=total, ts=1))  # fmt: skip

    add("allowance", vouch.amount, TREASURY, vouch.hash)
    add("hold", 300, ESCROW, "task-1")
    add("release", 300, ESCROW, "task-1")
    add("spend", 120, spend_to, "cd" * 32, 120)
    return made


async def _store(node: InProcessNode, entries: list[SignedEntry]) -> None:
    def write(conn: sqlite3.Connection) -> None:
        with transaction(conn):
            ledger_rows.append_entries(conn, entries)

    await node.services.database.run(write)


async def test_verify_reports_every_chain_and_finds_what_was_altered(
    node: InProcessNode,
) -> None:
    services = node.services
    key = _found(node)
    known, unknown, cheat = (NodeIdentity.generate() for _ in range(3))
    book = services.economy.book
    vouches = {}
    for peer in (known, unknown, cheat):
        vouches[peer.node_id] = make_vouch(key, network="default",
                                           network_key=key.public_key.hex(), node=peer.node_id,
                                           amount=1000, issued_ms=1)  # fmt: skip
        assert book.add(vouches[peer.node_id])
    own_vouch = await services.economy.vouch(services.node_id, 1000)
    await services.economy.ledger.append(Posting("allowance", 1000, TREASURY, own_vouch.hash))
    await _join(node, known)
    await _join(node, cheat)
    await _store(node, _chain(known, vouches[known.node_id], ME))
    await _store(node, _chain(unknown, vouches[unknown.node_id], ME))
    # The cheat's third entry was altered after it was signed (its amount raised).
    altered = _chain(cheat, vouches[cheat.node_id], ME)
    body = dataclasses.replace(altered[3].entry, amount=999, total=999)
    await _store(node, [*altered[:3], dataclasses.replace(altered[3], entry=body)])
    async with node.client() as client:
        document = (await client.get("/admin/ledger/verify")).json()
    chains = {c["node"]: c for c in document["chains"]}
    assert document["chains"][0]["node"] == services.node_id  # this node's own first
    assert chains[services.node_id]["verified"]
    assert chains[services.node_id]["signatures"]
    assert chains[services.node_id]["balance"] == 1000
    good = chains[known.node_id]
    assert (good["verified"], good["signatures"], good["entries"], good["balance"]) == (
        True, True, 4, 880)  # fmt: skip
    assert (chains[unknown.node_id]["verified"], chains[unknown.node_id]["signatures"]) == (
        True, False)  # fmt: skip
    bad = chains[cheat.node_id]
    assert (bad["verified"], bad["code"], bad["at_seq"]) == (False, "bad_chain", 4)
    assert bad["balance"] == 1000  # folded up to the entry that failed
    assert document["verified"] is False


def test_a_chain_that_verifies_but_breaks_the_rules_is_reported_with_the_rule() -> None:
    author = NodeIdentity.generate()
    vouch = _vouch(author.node_id)
    chain = _chain(author, vouch, ME)
    # Without the vouch known, the allowance grants nothing.
    report = verify_chain(author.node_id, chain, author.public_key, lambda ref, node: None)
    assert (report.verified, report.code, report.at_seq) == (False, "no_vouch", 1)
    # A validly signed spend of more than it has: an overdraft.
    lookup = {vouch.hash: vouch.amount}
    dear = new_entry(author, chain[2], kind="spend", amount=5000, party=ME, ref="cd" * 32,
                     total=5000, ts=1)  # fmt: skip
    report = verify_chain(author.node_id, [*chain[:3], dear], author.public_key,
                          lambda ref, node: lookup.get(ref))  # fmt: skip
    assert (report.verified, report.code, report.at_seq) == (False, "overdraft", 4)
    # Signed by someone else: the signed-chain verifier says so.
    report = verify_chain(author.node_id, chain, KEY.public_key, lambda ref, n: lookup.get(ref))
    assert (report.code, report.at_seq) == ("bad_chain", 1)
    report = verify_chain(author.node_id, chain, author.public_key, lambda r, n: lookup.get(r))
    assert report.verified
    assert (report.seq, report.head) == (4, chain[-1].hash_hex)


# -- the Balance property ---------------------------------------------------------------


async def test_the_balance_property_follows_the_ledger(node: InProcessNode) -> None:
    services, control = node.services, node.control
    changed: list[dict[str, object]] = []

    def heard(event: Event) -> None:
        assert isinstance(event, PropertiesChanged)
        changed.append(dict(event.changed))

    services.events.subscribe(heard, {PropertiesChanged.kind})
    assert control.properties()["Balance"] == 0
    await _standing(node, NodeIdentity.generate(), 1000)
    ledger = services.economy.ledger
    ledger.reserve("t1", 100)
    await ledger.hold("t1")  # held credits are still this node's: the balance stays
    await ledger.release("t1")
    assert changed == [{"Balance": 1000}]
    assert control.properties()["Balance"] == 1000
    view = await control.ledger(limit=2)
    assert (view["balance"], [e["body"]["kind"] for e in view["entries"]]) == (
        1000, ["release", "hold"])  # fmt: skip
