"""SWIM membership under a simulated clock and network."""

from __future__ import annotations

from edgecoder.mesh.membership import ALIVE, DEAD, SUSPECT, Membership
from tests.benchmarks.sim_network import SimNetwork


def test_nodes_learn_each_other_from_one_seed() -> None:
    net = SimNetwork(30, seed=3)
    net.start()
    net.run_until(15_000)
    assert net.full_view()


def test_a_killed_node_is_suspected_then_declared_dead() -> None:
    net = SimNetwork(12, seed=5)
    net.start()
    net.run_until(10_000)
    net.down.add("n7")
    net.run_until(12_500)
    states = {n.state_of("id7") for a, n in net.nodes.items() if a != "n7"}
    assert SUSPECT in states or DEAD in states
    net.run_until(40_000)
    assert {n.state_of("id7") for a, n in net.nodes.items() if a != "n7"} <= {DEAD, None}


def test_a_cut_off_node_refutes_when_it_returns() -> None:
    net = SimNetwork(10, seed=9)
    net.start()
    net.run_until(8_000)
    net.cut.add("n4")
    net.run_until(12_000)
    assert any(n.state_of("id4") in {SUSPECT, DEAD} for a, n in net.nodes.items() if a != "n4")
    net.cut.clear()
    # Before it is declared dead everywhere, the node hears the rumour and refutes it.
    net.run_until(60_000)
    assert net.nodes["n4"].incarnation >= 1
    assert all(n.state_of("id4") == ALIVE for a, n in net.nodes.items() if a != "n4")


def test_no_false_deaths_under_five_percent_loss() -> None:
    net = SimNetwork(40, seed=11, loss=0.05)
    net.start()
    net.run_until(60_000)
    assert net.full_view()
    assert all(m.state != DEAD for node in net.nodes.values() for m in node.members())


def test_rumours_about_unknown_nodes_create_no_members() -> None:
    node = Membership("me", "a")
    node.receive({"t": "sync", "from": "x", "addr": "b", "inc": 0, "updates": [],
                  "view": [{"id": "ghost", "addr": "c", "inc": 3, "state": DEAD}]}, 0)  # fmt: skip
    assert node.state_of("ghost") is None
    assert node.state_of("x") == ALIVE
