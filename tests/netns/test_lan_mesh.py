"""Five agents, each in its own network namespace on one bridge, finding each other by mDNS.

No bootstrap URLs: discovery is multicast DNS across the bridge. Then a node is cut off
(suspect → dead → it comes back and refutes), one is killed with SIGKILL and restarted on
its data dir (same identity, alive again), forged and replayed records are sent, and the
LAN gets 100 ms of latency and 5 % loss (membership stays right). The LAN is a kernel
bridge with ``tc netem`` where the kernel has netem, else a user-space impairing switch over
TAP devices (see ``tests/netns/lan.py``).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgecoder.security.identity import NodeIdentity
from edgecoder.wire import canonical
from edgecoder.wire.records import SignedRecord, sign_record
from tests.integration.agent_process import AgentProcess, edgecoder
from tests.integration.test_mesh_gossip import signed
from tests.netns.lan import Lan, netns_available
from tests.waiting import wait_until

pytestmark = [pytest.mark.netns, pytest.mark.integration, pytest.mark.slow]

NODES = 5
PERIOD_MS = 1000
SUSPICION_MULT = 3
CONFIG = f"""
[mesh]
period_ms = {PERIOD_MS}
ack_timeout_ms = 500
suspicion_mult = {SUSPICION_MULT}
dead_retention_ms = 8000
advert_interval_s = 2
"""
# The protocol's bound from a cut to "dead everywhere": a probe period to notice, the
# suspicion timeout (log10 of 5 members is below 1), and a few periods for the news of
# death to reach everyone.
DEAD_BOUND_S = (1 + SUSPICION_MULT + 4) * PERIOD_MS / 1000


class LanMesh:
    def __init__(self, root: Path) -> None:
        self.lan = Lan(NODES)
        self.agents: list[AgentProcess] = []
        self.keys: list[str] = []
        self.ids: list[str] = []
        for i in range(NODES):
            workdir = root / f"n{i}"
            workdir.mkdir()
            (workdir / "edgecoder.toml").write_text(CONFIG)
            agent = AgentProcess(workdir, prefix=self.lan.prefix(i), host=self.lan.address(i),
                                 mdns=True)  # fmt: skip
            key = edgecoder("keys", "create", "root", "--admin", "--data-dir",
                            str(agent.data_dir), env=agent.env)  # fmt: skip
            assert key.returncode == 0, key.stderr
            self.agents.append(agent)
            self.keys.append(key.stdout.strip())

    def start(self) -> None:
        for agent in self.agents:
            agent.start()
        self.ids = [self.health(i)["node_id"] for i in range(NODES)]

    def health(self, i: int) -> dict[str, Any]:
        return dict(httpx.get(f"{self.agents[i].api_url}/healthz", timeout=5).json())

    def peers(self, i: int) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.agents[i].api_url}/admin/peers", timeout=5,
                             headers={"Authorization": f"Bearer {self.keys[i]}"})  # fmt: skip
        assert response.status_code == 200, response.text
        return list(response.json()["peers"])

    def peer(self, i: int, node_id: str) -> dict[str, Any]:
        return next(p for p in self.peers(i) if p["node_id"] == node_id)

    def states(self, i: int) -> dict[str, str]:
        return {p["node_id"]: p["state"] for p in self.peers(i)}

    def others(self, j: int) -> list[int]:
        return [i for i in range(NODES) if i != j]

    def all_alive(self) -> bool:
        return all(
            all(self.states(i).get(self.ids[j]) == "alive" for j in self.others(i))
            for i in range(NODES)
        )

    def close(self) -> None:
        for agent in self.agents:
            agent.close()
        self.lan.close()


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LanMesh]:
    reason = netns_available()
    if reason is not None:
        pytest.skip(f"network namespaces unavailable: {reason}")
    group = LanMesh(tmp_path_factory.mktemp("lan"))
    try:
        group.start()
        yield group
    finally:
        group.close()


def test_nodes_find_each_other_by_mdns_alone(mesh: LanMesh) -> None:
    wait_until(mesh.all_alive, timeout=30)
    for i in range(NODES):
        health = mesh.health(i)
        assert health["mesh"]["peer_count"] == NODES - 1
        assert health["mesh"]["url"] == f"http://{mesh.lan.address(i)}:{mesh.agents[i].mesh_port}"


def test_a_cut_off_node_is_suspected_then_dead_and_refutes_when_back(mesh: LanMesh) -> None:
    wait_until(mesh.all_alive, timeout=30)
    victim = 4
    before = mesh.health(victim)["mesh"]["incarnation"]
    mesh.lan.cut(victim)
    seen: set[str] = set()

    def dead_everywhere() -> bool:
        states = [mesh.states(i).get(mesh.ids[victim]) for i in mesh.others(victim)]
        seen.update(s for s in states if s)
        return all(s in {"dead", None} for s in states)

    took = wait_until(dead_everywhere, timeout=DEAD_BOUND_S * 2)
    assert "suspect" in seen, f"went dead without being suspected first: {seen}"
    print(f"cut-off node dead everywhere after {took:.1f}s (protocol bound {DEAD_BOUND_S}s)")
    mesh.lan.restore(victim)
    wait_until(mesh.all_alive, timeout=30)
    assert mesh.health(victim)["mesh"]["incarnation"] > before


def test_a_killed_node_is_evicted_and_a_restart_is_the_same_node(mesh: LanMesh) -> None:
    wait_until(mesh.all_alive, timeout=30)
    victim = 3
    mesh.agents[victim].stop(signal.SIGKILL)

    def gone() -> bool:
        states = [mesh.states(i).get(mesh.ids[victim]) for i in mesh.others(victim)]
        return all(s in {"dead", None} for s in states)

    wait_until(gone, timeout=DEAD_BOUND_S * 2)
    mesh.agents[victim].start()
    assert mesh.health(victim)["node_id"] == mesh.ids[victim]
    wait_until(mesh.all_alive, timeout=30)


def test_forged_and_replayed_records_are_rejected(mesh: LanMesh) -> None:
    wait_until(mesh.all_alive, timeout=30)
    target, impersonated = 0, 1
    before = mesh.states(target)
    attacker = NodeIdentity.generate()
    now = int(time.time() * 1000)
    body = {"url": "http://10.77.0.99:4301", "addrs": [], "api_port": 4304,
            "network": "default", "version": "0"}  # fmt: skip
    forged = sign_record(attacker, "peer", now + 10**7, body, now, 60_000)
    as_victim = SignedRecord(**{**forged.to_wire(), "author": mesh.ids[impersonated],
                                "key": mesh.health(impersonated)["public_key"]})  # fmt: skip
    rumour = [mesh.ids[impersonated], now + 10**7, "alive", 0]
    message = {"t": "ping", "from": attacker.node_id, "addr": body["url"], "inc": 0, "adv": 0,
               "seq": 1, "updates": [rumour]}  # fmt: skip
    raw = canonical.encode({"network": "default", "msg": message,
                            "records": [as_victim.to_wire()]})  # fmt: skip
    headers = signed(attacker, mesh.ids[target], raw)
    url = f"{mesh.agents[target].mesh_url}/mesh/gossip"
    first = httpx.post(url, headers=headers, content=raw, timeout=5)
    assert first.status_code == 200, first.text
    assert first.json()["records"] == {"refused": 1}
    replayed = httpx.post(url, headers=headers, content=raw, timeout=5)
    assert replayed.status_code == 401
    assert replayed.json()["error"]["code"] == "replay"
    assert mesh.states(target) == before
    assert mesh.peer(target, mesh.ids[impersonated])["url"] == mesh.agents[impersonated].mesh_url


def test_membership_stays_correct_with_latency_and_loss(mesh: LanMesh) -> None:
    wait_until(mesh.all_alive, timeout=30)
    mesh.lan.impair(100, 5)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for i in range(NODES):
                states = mesh.states(i)
                wrong = {k: v for k, v in states.items() if v == "dead"}
                assert not wrong, f"node {i} declared live nodes dead under loss: {wrong}"
                assert len(states) == NODES - 1
            time.sleep(1)
        wait_until(mesh.all_alive, timeout=30)
    finally:
        mesh.lan.impair(0, 0)
