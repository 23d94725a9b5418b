"""SWIM membership under a simulated clock and network."""

from __future__ import annotations

from typing import Any

from edgecoder.mesh.digest import ViewDigest
from edgecoder.mesh.membership import (
    ALIVE,
    DEAD,
    SUSPECT,
    Membership,
    MembershipConfig,
    Send,
)
from edgecoder.mesh.news import NewsQueue
from tests.benchmarks.sim_network import AddressBook, SimNetwork


def test_nodes_learn_each_other_from_one_seed() -> None:
    net = SimNetwork(30, seed=3)
    net.start()
    net.run_until(10_000)
    assert net.full_view()


def test_a_killed_node_is_suspected_then_declared_dead_then_evicted() -> None:
    net = SimNetwork(12, seed=5)
    net.start()
    net.run_until(10_000)
    net.down.add("n7")
    net.run_until(12_500)
    assert {SUSPECT, DEAD} & set(net.states_of("id7"))
    net.run_until(25_000)
    assert set(net.states_of("id7")) == {DEAD}
    net.run_until(25_000 + 61_000)
    assert set(net.states_of("id7")) == {None}


def test_a_restarted_node_comes_back_alive() -> None:
    net = SimNetwork(8, seed=6)
    net.start()
    net.run_until(8_000)
    net.down.add("n3")
    net.run_until(30_000)
    assert set(net.states_of("id3")) == {DEAD}
    net.restart("n3")
    net.run_until(40_000)
    assert set(net.states_of("id3")) == {ALIVE}
    assert net.full_view()


def test_a_cut_off_node_refutes_when_it_returns() -> None:
    net = SimNetwork(10, seed=9)
    net.start()
    net.run_until(8_000)
    net.cut.add("n4")
    net.run_until(11_000)
    assert SUSPECT in net.states_of("id4")
    net.cut.clear()
    net.run_until(30_000)
    assert net.nodes["n4"].incarnation >= 1
    assert set(net.states_of("id4")) == {ALIVE}
    assert net.full_view()


def test_a_partition_that_outlived_eviction_heals_through_the_seeds() -> None:
    net = SimNetwork(6, seed=11)
    net.start(seeds=list(net.nodes))  # every address known, as mDNS finds them
    net.run_until(8_000)
    assert net.full_view()
    net.halves = [{"n0", "n1", "n2"}, {"n3", "n4", "n5"}]
    net.run_until(8_000 + 90_000)  # declared dead, then evicted, on both sides
    assert set(net.states_of("id0")) == {ALIVE, None}
    net.halves = None
    net.run_until(8_000 + 90_000 + 30_000)
    assert net.full_view()


def test_a_partition_heals_before_eviction_through_the_dead_members() -> None:
    net = SimNetwork(6, seed=12)
    net.start()  # one seed, "n0": the far half knows the others only from gossip
    net.run_until(8_000)
    net.halves = [{"n0", "n1", "n2"}, {"n3", "n4", "n5"}]
    net.run_until(8_000 + 30_000)  # dead on both sides, not yet evicted
    assert DEAD in net.states_of("id4")
    net.halves = None
    net.run_until(8_000 + 30_000 + 25_000)
    assert net.full_view()


def test_without_reconnecting_a_long_partition_never_heals() -> None:
    net = SimNetwork(6, seed=11, config=MembershipConfig(reconnect_periods=0))
    net.start(seeds=list(net.nodes))
    net.run_until(8_000)
    net.halves = [{"n0", "n1", "n2"}, {"n3", "n4", "n5"}]
    net.run_until(8_000 + 90_000)
    net.halves = None
    net.run_until(8_000 + 90_000 + 60_000)
    assert not net.full_view()  # what the reconnects are for


def test_no_false_deaths_under_five_percent_loss() -> None:
    net = SimNetwork(40, seed=11, loss=0.05)
    net.start()
    net.run_until(15_000)
    assert net.full_view()
    for _ in range(45):
        net.run_until(net.now_ms + 1000)
        assert net.false_deaths() == 0


def test_a_converged_mesh_exchanges_only_roots() -> None:
    net = SimNetwork(20, seed=4)
    net.start()
    net.run_until(15_000)
    roots = {node.root() for node in net.nodes.values()}
    assert len(roots) == 1
    before = dict(net.bytes_sent)
    net.run_until(25_000)
    sent = sum(net.bytes_sent[a] - before[a] for a in net.nodes) / 20 / 10
    assert sent < 2 * 1500  # ping, ack and one root per period: no digests, no entries


def _exchange(first: Send, nodes: dict[str, Membership]) -> list[dict[str, Any]]:
    """Deliver ``first`` and every reply it causes; the messages in order."""
    seen, pending = [], [first]
    while pending:
        send = pending.pop(0)
        seen.append(send.message)
        pending.extend(nodes[send.address].receive(send.message, 0))
    return seen


def test_anti_entropy_lists_entries_compactly_and_moves_only_what_differs() -> None:
    book = AddressBook()
    book.addresses.update({f"m{i}": f"m{i}" for i in range(40)} | {"a": "a", "b": "b"})
    quiet = MembershipConfig(max_piggyback=0)  # anti-entropy alone, no gossip
    a, b = Membership("a", "a", book, quiet), Membership("b", "b", book, quiet)
    base = {"t": "ack", "addr": "x", "adv": 0, "seq": 0, "updates": []}
    for i in range(40):  # both know m0..m39 at incarnation 1
        for node in (a, b):
            node.receive({**base, "from": f"m{i}", "inc": 1}, 0)
    a.receive({**base, "from": "m3", "inc": 2}, 0)  # a has newer news of m3
    b.receive({**base, "from": "m7", "inc": 2}, 0)  # b has newer news of m7
    for node, other in ((a, "b"), (b, "a")):
        node.receive({**base, "from": other, "inc": 0}, 0)
    sync = Send("b", {"t": "sync", "from": "a", "addr": "a", "inc": 0, "adv": 0,
                      "updates": [], "root": a.root()}, "b")  # fmt: skip
    kinds = [(m["t"], sorted(e[0] for e in m.get("entries", ()))) for m in _exchange(sync,
             {"a": a, "b": b})]  # fmt: skip
    assert kinds == [("sync", []), ("sync_digest", []), ("sync_have", []),
                     ("sync_entries", ["m7"]), ("sync_entries", ["m3"])]  # fmt: skip
    assert a.root() == b.root()
    assert (a.member("m7"), b.member("m3")) != (None, None)
    assert a.member("m7").incarnation == b.member("m3").incarnation == 2  # type: ignore[union-attr]


def test_rumours_about_unknown_nodes_create_no_members() -> None:
    book = AddressBook()
    book.addresses["x"] = "b"
    node = Membership("me", "a", book)
    node.receive({"t": "sync_entries", "from": "x", "addr": "b", "inc": 0, "adv": 0,
                  "updates": [], "entries": [["ghost", 3, DEAD, 0], ["ghost2", 1, SUSPECT, 0]],
                  "reply": True}, 0)  # fmt: skip
    assert node.state_of("ghost") is None
    assert node.state_of("ghost2") is None
    assert node.state_of("x") == ALIVE


def test_alive_news_needs_the_directory_to_vouch() -> None:
    book = AddressBook()
    book.addresses["x"] = "b"
    node = Membership("me", "a", book)
    node.receive({"t": "ack", "from": "x", "addr": "b", "inc": 0, "adv": 0, "seq": 1,
                  "updates": [["fake", 0, ALIVE, 0]]}, 0)  # fmt: skip
    assert node.state_of("fake") is None
    node.receive({"t": "ack", "from": "stranger", "addr": "c", "inc": 0, "adv": 0, "seq": 1,
                  "updates": []}, 0)  # fmt: skip
    assert node.state_of("stranger") is None


def test_malformed_items_are_ignored() -> None:
    book = AddressBook()
    book.addresses.update({"x": "b", "y": "c"})
    node = Membership("me", "a", book)
    node.receive({"t": "ping", "from": "x", "addr": "b", "inc": 0, "adv": 0, "seq": 1,
                  "updates": [["y", -1, ALIVE, 0], ["y", 1.5, ALIVE, 0], ["y", 0, "zombie", 0],
                              "junk", ["y", True, ALIVE, 0], ["y"]]}, 0)  # fmt: skip
    assert node.state_of("y") is None
    assert node.state_of("x") == ALIVE


def _hearing_x_about_y() -> tuple[Membership, dict[str, Any]]:
    """A node that can reach x and y, and an ack from x to carry news about y."""
    book = AddressBook()
    book.addresses.update({"x": "b", "y": "c"})
    base = {"t": "ack", "from": "x", "addr": "b", "inc": 0, "adv": 0, "seq": 9}
    return Membership("me", "a", book), base


def test_stale_news_never_overwrites_newer() -> None:
    node, base = _hearing_x_about_y()
    node.receive({**base, "updates": [["y", 5, ALIVE, 2]]}, 0)
    node.receive({**base, "updates": [["y", 4, SUSPECT, 0], ["y", 5, ALIVE, 1]]}, 0)
    member = node.member("y")
    assert member is not None
    assert (member.incarnation, member.state, member.advert) == (5, ALIVE, 2)
    node.receive({**base, "updates": [["y", 5, SUSPECT, 0]]}, 0)
    assert node.state_of("y") == SUSPECT
    node.receive({**base, "updates": [["y", 5, ALIVE, 9]]}, 0)
    assert node.state_of("y") == SUSPECT  # same incarnation: only y itself can refute


def test_digest_is_order_independent_and_reversible() -> None:
    a, b = ViewDigest(8), ViewDigest(8)
    entries = [(f"n{i}", i, ALIVE, 0) for i in range(20)]
    for entry in entries:
        a.toggle(*entry)
    for entry in reversed(entries):
        b.toggle(*entry)
    assert a.root() == b.root()
    assert a.hashes() == b.hashes()
    b.toggle(*entries[3])
    assert a.root() != b.root()
    assert len(a.differing(b.hashes())) == 1
    b.toggle(*entries[3])
    assert a.differing(b.hashes()) == []


def test_news_queue_sends_least_sent_first_and_stays_bounded() -> None:
    queue = NewsQueue(capacity=3)
    queue.put("a", ["a", 0, ALIVE, 0], 2)
    queue.put("b", ["b", 0, ALIVE, 0], 5)
    assert [u[0] for u in queue.take(1)] == ["b"]
    assert [u[0] for u in queue.take(1, first="a")] == ["a"]
    queue.put("c", ["c", 0, ALIVE, 0], 5)
    queue.put("d", ["d", 0, ALIVE, 0], 5)
    assert len(queue) == 3  # "a", sent the most, was dropped
    assert sorted(u[0] for u in queue.take(10)) == ["b", "c", "d"]


def test_news_queue_sends_the_newest_of_equally_sent_items_first() -> None:
    queue = NewsQueue(capacity=10)
    for node_id in ("a", "b", "c"):
        queue.put(node_id, [node_id, 0, ALIVE, 0], 4)
    queue.put("x", ["x", 1, ALIVE, 0], 4)  # a refutation arriving behind a backlog
    assert [u[0] for u in queue.take(2)] == ["x", "c"]


def test_news_queue_halves_what_is_left_and_drops_what_is_spent() -> None:
    queue = NewsQueue(capacity=10)
    queue.put("a", ["a", 0, ALIVE, 0], 1)
    queue.put("b", ["b", 0, ALIVE, 0], 5)
    queue.put("c", ["c", 0, ALIVE, 0], 4)
    queue.halve()
    assert len(queue) == 2
    assert sorted(u[0] for u in queue.take(10)) == ["b", "c"]  # two sends left each
    assert sorted(u[0] for u in queue.take(10)) == ["b", "c"]
    assert queue.take(10) == []


def test_a_peer_holding_the_same_view_halves_the_news_still_queued() -> None:
    book = AddressBook()
    book.addresses.update({f"m{i}": f"m{i}" for i in range(6)})
    node = Membership("me", "a", book)
    for i in range(6):
        node.receive({"t": "ack", "from": f"m{i}", "addr": "x", "inc": 0, "adv": 0, "seq": 0,
                      "updates": []}, 0)  # fmt: skip
    queued = node.news_pending
    assert queued == 6
    sync = {"t": "sync", "from": "m0", "addr": "m0", "inc": 0, "adv": 0, "updates": []}
    assert node.receive({**sync, "root": "0" * 16}, 0)[0].message["t"] == "sync_digest"
    assert node.news_pending == queued  # a differing view: news is still news
    for _ in range(8):
        assert node.receive({**sync, "root": node.root()}, 0) == []
    assert node.news_pending == 0


def test_a_lost_ping_is_retried_directly_before_any_suspicion() -> None:
    book = AddressBook()
    book.addresses.update({"me": "a", "x": "b"})
    node = Membership("me", "a", book)
    node.receive({"t": "ack", "from": "x", "addr": "b", "inc": 0, "adv": 0, "seq": 0}, 0)
    first = [s for s in node.tick(1000) if s.message["t"] == "ping"]
    assert [s.address for s in first] == ["b"]  # this ping (or its ack) is lost
    seq = first[0].message["seq"]
    retry = [s for s in node.tick(1000 + node.config.ack_timeout_ms) if s.message["t"] == "ping"]
    assert [(s.address, s.message["seq"]) for s in retry] == [("b", seq)]
    node.receive({"t": "ack", "from": "x", "addr": "b", "inc": 0, "adv": 0, "seq": seq}, 1500)
    node.tick(2000)
    assert node.state_of("x") == ALIVE


def test_a_helper_pings_a_target_it_has_not_met_only_at_its_recorded_address() -> None:
    book = AddressBook()
    book.addresses.update({"me": "a", "x": "b", "t": "c"})
    helper = Membership("me", "a", book)
    request = {"t": "ping_req", "from": "x", "addr": "b", "inc": 0, "adv": 0, "seq": 4,
               "updates": [], "target": "t"}  # fmt: skip
    [ping] = helper.receive(request, 0)
    assert (ping.address, ping.message["t"]) == ("c", "ping")
    assert helper.state_of("t") is None  # pinging it is not believing in it
    [ack] = helper.receive({"t": "ack", "from": "t", "addr": "c", "inc": 0, "adv": 0,
                            "seq": ping.message["seq"], "updates": []}, 10)  # fmt: skip
    assert (ack.address, ack.message["t"], ack.message["seq"]) == ("b", "ack", 4)
    assert helper.receive({**request, "target": "nowhere"}, 20) == []


def test_a_refuted_suspicion_never_kills_and_a_later_one_runs_its_full_timeout() -> None:
    node, base = _hearing_x_about_y()
    node.receive({**base, "updates": [["y", 1, ALIVE, 0]]}, 0)
    timeout = node.config.suspicion_mult * node.config.period_ms  # log10(3) < 1
    node.receive({**base, "updates": [["y", 1, SUSPECT, 0]]}, 0)
    node.receive({**base, "updates": [["y", 2, ALIVE, 0]]}, 100)  # y refuted
    node.receive({**base, "updates": [["y", 2, SUSPECT, 0]]}, timeout - 500)
    node.tick(timeout + 10)  # the first suspicion's deadline: stale, no effect
    assert node.state_of("y") == SUSPECT
    assert (node.suspect_count, node.dead_count, node.live_count) == (1, 0, 2)
    node.tick(2 * timeout - 400)
    assert node.state_of("y") == DEAD
    assert (node.dead_count, node.live_count) == (1, 1)
    assert node.suspect_count == (node.state_of("x") == SUSPECT)  # x never answers a probe
    node.tick(2 * timeout - 400 + node.config.dead_retention_ms)
    assert node.state_of("y") is None  # evicted after the retention
