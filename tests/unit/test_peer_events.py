"""Peers' changes of state: reported by the membership core, announced by its driver."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from edgecoder.clock import SystemClock
from edgecoder.config import Config, MeshConfig
from edgecoder.events import Event, EventHub, PeerStateChanged
from edgecoder.mesh.advert_types import Advert
from edgecoder.mesh.membership import (
    ALIVE,
    DEAD,
    FORGOTTEN,
    SUSPECT,
    Membership,
    MembershipConfig,
    StateChange,
)
from edgecoder.mesh.node import MeshNode
from edgecoder.mesh.peer_info import ADVERT
from edgecoder.security.identity import NodeIdentity
from edgecoder.security.mesh_guard import MeshGuard
from edgecoder.security.rotation import ROTATION, rotation_record
from edgecoder.wire.records import SignedRecord
from tests.adverts import advert, model
from tests.benchmarks.sim_network import AddressBook, SimNetwork


def _ack(inc: int) -> dict[str, object]:
    # An ack for no probe of ours: only news that x is alive at ``inc``.
    return {"t": "ack", "from": "x", "addr": "b", "inc": inc, "adv": 0, "seq": 999, "updates": []}


def _tick_until(node: Membership, now_ms: int, state: str | None) -> int:
    for _ in range(10_000):  # a bound on simulated time, not a wait
        if node.state_of("x") == state:
            return now_ms
        now_ms += 100
        node.tick(now_ms)
    raise AssertionError(f"x never became {state}")


def test_each_change_of_a_members_state_is_reported_once_in_order() -> None:
    book = AddressBook()
    book.addresses["x"] = "b"
    config = MembershipConfig(dead_retention_ms=10_000)
    node = Membership("me", "a", book, config, track_changes=True)
    node.receive(_ack(0), 0)
    assert node.take_changes() == [StateChange("x", ALIVE, None)]
    assert node.take_changes() == []
    node.receive(_ack(0), 10)  # heard again, nothing new
    assert node.take_changes() == []
    now = _tick_until(node, 10, SUSPECT)  # x never answers a ping
    assert node.take_changes() == [StateChange("x", SUSPECT, ALIVE)]
    node.receive(_ack(1), now)  # x refutes the suspicion
    assert node.take_changes() == [StateChange("x", ALIVE, SUSPECT)]
    now = _tick_until(node, now, None)
    assert node.take_changes() == [
        StateChange("x", SUSPECT, ALIVE),
        StateChange("x", DEAD, SUSPECT),
        StateChange("x", FORGOTTEN, DEAD),
    ]


def test_a_membership_that_does_not_track_keeps_no_changes() -> None:
    net = SimNetwork(8, seed=2)
    net.start()
    net.run_until(5_000)
    assert net.full_view()
    assert all(node.take_changes() == [] for node in net.nodes.values())
    assert all(node._changes is None for node in net.nodes.values())


class _Quiet:
    """A gossip transport whose every peer answers ``ok``."""

    async def send(self, url: str, node_id: str | None, body: bytes) -> tuple[int, Any]:
        return 200, {"ok": True}


def _mesh_node(identity: NodeIdentity, url: str, events: EventHub | None = None) -> MeshNode:
    clock = SystemClock()

    async def no_advert() -> Any:
        raise AssertionError("not asked for in this test")

    return MeshNode(identity=identity, config=Config(), clock=clock,
                    guard=MeshGuard(identity.node_id, MeshConfig(), clock), url=url, addrs=[],
                    api_port=1, transport=_Quiet(), advert_source=no_advert,
                    events=events)  # fmt: skip


@pytest.mark.anyio
async def test_the_mesh_driver_publishes_what_its_membership_reports() -> None:
    hub = EventHub()
    seen: list[Event] = []
    hub.subscribe(seen.append, {PeerStateChanged.kind})
    a = _mesh_node(NodeIdentity(bytes(range(32))), "http://a:1", hub)
    b = _mesh_node(NodeIdentity(bytes(range(1, 33))), "http://b:1")
    b._publish_peer()
    (hello,) = b.membership.join([a.url], 0)
    a.receive(b.node_id, b._encode(hello.message, None))  # b's signed record travels with it
    assert seen == [PeerStateChanged(b.node_id, ALIVE, None)]
    for step in range(1, 100):  # simulated time: b never acks a's pings
        a._dispatch(a.membership.tick(step * 200))
        if a.membership.state_of(b.node_id) != ALIVE:
            break
    assert seen[-1] == PeerStateChanged(b.node_id, SUSPECT, ALIVE)
    await asyncio.gather(*a._tasks)


@pytest.mark.anyio
async def test_a_suspect_peer_stays_a_candidate_and_is_marked_suspected() -> None:
    a = _mesh_node(NodeIdentity(bytes(range(32))), "http://a:1")
    b = _mesh_node(NodeIdentity(bytes(range(1, 33))), "http://b:1")

    async def holds_m() -> Advert:
        return advert(model("m"))

    b._advert_source = holds_m
    b._publish_peer()
    await b.publish_advert()
    (hello,) = b.membership.join([a.url], 0)
    a.receive(b.node_id, b._encode(hello.message, None))
    record = b.store.get(b.node_id, ADVERT)
    assert record is not None
    a.store.offer(record, a.clock.now_ms())
    assert [node_id for node_id, _ in a.adverts()] == [b.node_id]
    assert not a.suspected(b.node_id)
    was_suspect = False
    for step in range(1, 100):  # b never acks: suspected, then dead
        a._dispatch(a.membership.tick(step * 200))
        if a.membership.state_of(b.node_id) == SUSPECT:
            was_suspect = True
            assert [node_id for node_id, _ in a.adverts()] == [b.node_id]
            assert a.suspected(b.node_id)
        if a.membership.state_of(b.node_id) == DEAD:
            break
    assert was_suspect
    assert a.membership.state_of(b.node_id) == DEAD
    assert a.adverts() == []
    assert not a.suspected(b.node_id)
    await asyncio.gather(*a._tasks)


@pytest.mark.anyio
async def test_a_key_rotation_spreads_with_gossip_and_is_taken_where_it_arrives() -> None:
    old, new = NodeIdentity(bytes(range(1, 33))), NodeIdentity(bytes(range(3, 35)))
    clock = SystemClock()

    def node(identity: NodeIdentity, url: str) -> MeshNode:
        guard = MeshGuard(identity.node_id, MeshConfig(), clock)

        async def no_advert() -> Any:
            raise AssertionError("not asked for in this test")

        def take(record: SignedRecord) -> None:
            guard.rotations.accept(record, clock.now_ms())

        return MeshNode(identity=identity, config=Config(), clock=clock, guard=guard, url=url,
                        addrs=[], api_port=1, transport=_Quiet(), advert_source=no_advert,
                        record_checks={ROTATION: take})  # fmt: skip

    a, b = node(NodeIdentity(bytes(range(32))), "http://a:1"), node(old, "http://b:1")
    b._publish_peer()
    b.store.offer(rotation_record(old, new, clock.now_ms(), 60_000), clock.now_ms())
    (hello,) = b.membership.join([a.url], 0)
    a.receive(b.node_id, b._encode(hello.message, None))
    assert a.guard.rotations.successor(old.node_id) == new.node_id
    assert a.store.get(old.node_id, ROTATION) is not None  # held, so it spreads on
    await asyncio.gather(*a._tasks)
