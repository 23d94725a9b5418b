"""Gossip membership between real agents on this machine (bootstrap URLs, no mDNS).

The multi-host version, with mDNS across a bridge and netem, is ``tests/netns``.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgecoder.security.identity import NodeIdentity
from edgecoder.speedups import envelope
from edgecoder.wire import canonical
from edgecoder.wire.records import SignedRecord, sign_record
from tests.integration.agent_process import AgentProcess, edgecoder
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

FAST = """
[mesh]
period_ms = 300
ack_timeout_ms = 100
suspicion_mult = 3
dead_retention_ms = 4000
advert_interval_s = 1
"""


def health(agent: AgentProcess) -> dict[str, Any]:
    return agent.get(f"{agent.api_url}/healthz")[1]


def admin_peers(agent: AgentProcess, admin_key: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{agent.api_url}/admin/peers",
                         headers={"Authorization": f"Bearer {admin_key}"}, timeout=5)  # fmt: skip
    assert response.status_code == 200, response.text
    return list(response.json()["peers"])


def peer_states(agent: AgentProcess, admin_key: str) -> dict[str, str]:
    return {p["node_id"]: p["state"] for p in admin_peers(agent, admin_key)}


def signed(sender: NodeIdentity, recipient: str, body: bytes) -> dict[str, str]:
    now = int(time.time() * 1000)
    headers = envelope.sign_request(
        sender.secret_key, sender.public_key, "POST", "/mesh/gossip", recipient, body, now
    )
    return dict(headers)


class Mesh:
    """A seed agent and followers that bootstrap from it, each with an admin key."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.agents: list[AgentProcess] = []
        self.keys: list[str] = []
        self.ids: list[str] = []

    def add(self, name: str, *, data_from: AgentProcess | None = None) -> AgentProcess:
        workdir = self.root / name
        workdir.mkdir(parents=True)
        (workdir / "edgecoder.toml").write_text(FAST)
        args = ("--bootstrap", self.agents[0].mesh_url) if self.agents else ()
        agent = AgentProcess(workdir, *args)
        if data_from is not None:
            shutil.copytree(data_from.data_dir, agent.data_dir)
        result = edgecoder("keys", "create", f"admin-{name}", "--admin",
                           "--data-dir", str(agent.data_dir), env=agent.env)  # fmt: skip
        assert result.returncode == 0, result.stderr
        agent.start()
        self.agents.append(agent)
        self.keys.append(result.stdout.strip())
        self.ids.append(health(agent)["node_id"])
        return agent

    def sees(self, index: int, expected: dict[str, str]) -> bool:
        states = peer_states(self.agents[index], self.keys[index])
        return all(states.get(node_id) == state for node_id, state in expected.items())

    def close(self) -> None:
        for agent in self.agents:
            agent.close()


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    group = Mesh(tmp_path)
    yield group
    group.close()


def test_nodes_find_each_other_detect_a_kill_and_take_back_a_restart(mesh: Mesh) -> None:
    a, b, c = mesh.add("a"), mesh.add("b"), mesh.add("c")
    for i in range(3):
        others = {mesh.ids[j]: "alive" for j in range(3) if j != i}
        wait_until(lambda i=i, others=others: mesh.sees(i, others))
    assert health(a)["mesh"]["peer_count"] == 2
    # kill -9: suspected, then dead, then forgotten.
    c.stop(signal.SIGKILL)
    wait_until(lambda: mesh.sees(0, {mesh.ids[2]: "dead"}) and mesh.sees(1, {mesh.ids[2]: "dead"}))
    assert health(a)["mesh"]["peer_count"] == 1
    wait_until(lambda: mesh.ids[2] not in peer_states(a, mesh.keys[0]))
    # Restarted on the same data dir: the same identity, alive again everywhere.
    c.start()
    assert health(c)["node_id"] == mesh.ids[2]
    wait_until(
        lambda: mesh.sees(0, {mesh.ids[2]: "alive"}) and mesh.sees(1, {mesh.ids[2]: "alive"})
    )
    b.stop()


def test_admin_peers_needs_an_admin_key_and_the_cli_prints_the_same(mesh: Mesh) -> None:
    a = mesh.add("a")
    mesh.add("b")
    wait_until(lambda: mesh.sees(0, {mesh.ids[1]: "alive"}))
    user = edgecoder("keys", "create", "user", "--data-dir", str(a.data_dir), env=a.env)
    response = httpx.get(f"{a.api_url}/admin/peers",
                         headers={"Authorization": f"Bearer {user.stdout.strip()}"})  # fmt: skip
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "admin_required"
    assert httpx.get(f"{a.api_url}/admin/peers").status_code == 401
    listed = edgecoder("peers", "--url", a.api_url, "--json", "--api-key", mesh.keys[0], env=a.env)
    assert listed.returncode == 0, listed.stderr
    peer = json.loads(listed.stdout)["peers"][0]
    assert peer["node_id"] == mesh.ids[1]
    assert peer["url"] == mesh.agents[1].mesh_url
    assert peer["api_port"] == mesh.agents[1].api_port
    assert peer["advert"]["slots"] == 1
    assert isinstance(peer["last_heard_ms"], int)
    table = edgecoder("peers", "--url", a.api_url, env=dict(a.env, EDGECODER_API_KEY=mesh.keys[0]))
    assert table.returncode == 0, table.stderr
    assert mesh.ids[1] in table.stdout
    assert "alive" in table.stdout
    missing = edgecoder("peers", "--url", a.api_url, env=a.env)
    assert missing.returncode == 2
    assert "admin API key is needed" in missing.stderr
    status = edgecoder("status", "--url", a.api_url, env=a.env)
    assert "1 (1 alive, 0 suspect, 0 dead)" in status.stdout


def test_a_copied_data_dir_is_refused_and_says_so(mesh: Mesh) -> None:
    mesh.add("a")
    original = mesh.add("b")
    wait_until(lambda: mesh.sees(0, {mesh.ids[1]: "alive"}))
    copy = mesh.add("copy", data_from=original)
    assert mesh.ids[2] == mesh.ids[1]
    wait_until(lambda: health(copy)["status"] == "degraded")
    conflict = health(copy)["mesh"]["identity_conflict"]
    assert conflict["code"] == "duplicate_node_id"
    assert "copy of another node" in conflict["message"]
    code, err = copy.stop()
    assert code == 0
    assert "identity conflict" in err
    # The original is untouched: still alive at its own address.
    assert mesh.sees(0, {mesh.ids[1]: "alive"})
    peers = admin_peers(mesh.agents[0], mesh.keys[0])
    assert peers[0]["url"] == original.mesh_url
    assert health(original)["status"] == "ok"


def gossip(target: AgentProcess, sender: NodeIdentity, records: list[SignedRecord],
           inc: int, url: str = "http://127.0.0.1:9") -> httpx.Response:  # fmt: skip
    message = {"t": "ping", "from": sender.node_id, "addr": url, "inc": inc, "adv": 0,
               "seq": 1, "updates": []}  # fmt: skip
    body = canonical.encode({"network": "default", "msg": message,
                             "records": [r.to_wire() for r in records]})  # fmt: skip
    headers = signed(sender, health(target)["node_id"], body)
    return httpx.post(f"{target.mesh_url}/mesh/gossip", headers=headers, content=body)


def test_forged_and_replayed_records_change_nothing(mesh: Mesh) -> None:
    a = mesh.add("a")
    mesh.add("b")
    wait_until(lambda: mesh.sees(0, {mesh.ids[1]: "alive"}))
    before = peer_states(a, mesh.keys[0])
    attacker = NodeIdentity.generate()
    now = int(time.time() * 1000)
    body = {"url": "http://127.0.0.1:9", "addrs": [], "api_port": 9, "network": "default",
            "version": "0"}  # fmt: skip
    # B's peer record, moved to the attacker's address: signed by the attacker's key.
    honest = sign_record(attacker, "peer", now + 10**6, body, now, 60_000)
    wrong_key = SignedRecord(**{**honest.to_wire(), "author": mesh.ids[1]})
    b_key = health(mesh.agents[1])["public_key"]
    wrong_sig = SignedRecord(**{**honest.to_wire(), "author": mesh.ids[1], "key": b_key})
    response = gossip(a, attacker, [wrong_key, wrong_sig], inc=0)
    assert response.status_code == 200, response.text
    assert response.json()["records"] == {"refused": 2}
    assert health(a)["mesh"]["refused_records"] == {"bad_key": 1, "bad_signature": 1}
    assert peer_states(a, mesh.keys[0]) == before
    # The attacker's own record makes it a member; an older record of it is stale.
    newer = sign_record(attacker, "peer", 5, body, now, 60_000)
    assert gossip(a, attacker, [newer], inc=5).json()["records"] == {"new": 1}
    older = sign_record(attacker, "peer", 3, body, now - 1000, 60_000)
    assert gossip(a, attacker, [older], inc=3).json()["records"] == {"stale": 1}
    peers = admin_peers(a, mesh.keys[0])
    fake = next(p for p in peers if p["node_id"] == attacker.node_id)
    assert fake["url"] == "http://127.0.0.1:9"
    # A replayed request is refused before any record is looked at.
    message = {"t": "ping", "from": attacker.node_id, "addr": "http://127.0.0.1:9", "inc": 5,
               "adv": 0, "seq": 2, "updates": []}  # fmt: skip
    raw = canonical.encode({"network": "default", "msg": message, "records": []})
    headers = signed(attacker, mesh.ids[0], raw)
    assert httpx.post(f"{a.mesh_url}/mesh/gossip", headers=headers, content=raw).status_code == 200
    again = httpx.post(f"{a.mesh_url}/mesh/gossip", headers=headers, content=raw)
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "replay"
    # Another network, and a message whose sender is not the signer, are refused.
    foreign = canonical.encode({"network": "other", "msg": message, "records": []})
    headers = signed(attacker, mesh.ids[0], foreign)
    refused = httpx.post(f"{a.mesh_url}/mesh/gossip", headers=headers, content=foreign)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "wrong_network"
