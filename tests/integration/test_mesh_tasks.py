"""Mesh tasks between real agents on this machine, with the real model (bootstrap URLs).

A requester-only node A (``tasks.worker_slots = 0``) and workers B and C: A's client API
serves every request through a worker; the multi-host versions (kill mid-stream, the
20-worker race, partitions, wire capture) are in ``tests/netns``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgecoder.ledger.checkpoints import leaf, verify_proof
from tests.integration.nodes import ModelNode
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.model]

MESH = """
[mesh]
period_ms = 300
ack_timeout_ms = 100
advert_interval_s = 1
mdns = false
{bootstrap}
[tasks]
worker_slots = {slots}
lease_ms = 3000
"""


def config(slots: int, seed: ModelNode | None = None) -> str:
    bootstrap = f'bootstrap = ["{seed.agent.mesh_url}"]' if seed else ""
    return MESH.format(bootstrap=bootstrap, slots=slots)


def admin(node: ModelNode, path: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {node.admin_key}"}
    response = httpx.get(f"{node.url}{path}", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def models_seen(node: ModelNode) -> int:
    peers = admin(node, "/admin/peers")["peers"]
    return sum(1 for p in peers if p["state"] == "alive" and p["models"])


def funded(node: ModelNode) -> bool:
    """Whether the node was granted its allowance (so it can pay for peers' work)."""
    return bool(admin(node, "/admin/ledger")["allowance"])


class Trio:
    def __init__(self, root: Path) -> None:
        self.b = ModelNode(root / "b", config(1))
        self.c = ModelNode(root / "c", config(1, self.b))
        self.a = ModelNode(root / "a", config(0, self.b))
        self.workers = {self.b.node_id: self.b, self.c.node_id: self.c}
        wait_until(lambda: models_seen(self.a) == 2)
        wait_until(lambda: funded(self.a), what="the requester's allowance")

    def close(self) -> None:
        for node in (self.a, self.b, self.c):
            node.agent.close()


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    group = Trio(tmp_path_factory.mktemp("tasks"))
    yield group
    group.close()


def chat(node: ModelNode, content: str, *, stream: bool, max_tokens: int = 8) -> httpx.Response:
    body = {"model": "gemma3:270m", "stream": stream, "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": content}]}  # fmt: skip
    return httpx.post(f"{node.url}/v1/chat/completions", json=body, timeout=120,
                      headers={"Authorization": f"Bearer {node.key}"})  # fmt: skip


def runs_of(node: ModelNode) -> list[dict[str, Any]]:
    return list(admin(node, "/admin/tasks?limit=1000")["runs"])


def test_a_requester_only_node_streams_from_a_worker_named_in_the_header(trio: Trio) -> None:
    response = chat(trio.a, "Say hello.", stream=True)
    assert response.status_code == 200, response.text
    worker = response.headers["x-edgecoder-node"]
    assert worker in trio.workers
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.strip()
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    # The worker ran it once; the requester-only node never executed anything.
    tasks = admin(trio.a, "/admin/tasks")
    task = tasks["tasks"][0]
    assert task["state"] == "done"
    assert task["worker"] == worker
    assert task["attempts"] == 1
    assert not tasks["runs"]
    assert [r["task_id"] for r in runs_of(trio.workers[worker])].count(task["task_id"]) == 1


def test_a_non_streamed_chat_gets_a_receipt_signed_by_both(trio: Trio) -> None:
    response = chat(trio.a, "Count to three.", stream=False)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"].strip()
    worker = trio.workers[response.headers["x-edgecoder-node"]]
    wait_until(lambda: admin(trio.a, "/admin/tasks")["tasks"][0]["receipt"] == "countersigned")
    task = admin(trio.a, "/admin/tasks")["tasks"][0]
    assert task["output_tokens"] == body["usage"]["completion_tokens"]
    # The worker's copy of the receipt carries both signatures and its own token counts.
    db = sqlite3.connect(f"file:{worker.agent.data_dir / 'edgecoder.db'}?mode=ro", uri=True)
    row = db.execute("SELECT body, origin_sig, worker_sig, role FROM receipts WHERE task_id = ?",
                     (task["task_id"],)).fetchone()  # fmt: skip
    db.close()
    receipt = json.loads(row[0])
    assert row[3] == "worker"
    assert row[1]
    assert row[2]
    assert receipt["worker"] == worker.node_id
    assert receipt["origin"] == trio.a.node_id
    assert receipt["output_tokens"] == body["usage"]["completion_tokens"]


def test_each_task_is_charged_to_the_key_that_asked_and_its_budget_refuses_more(
    trio: Trio,
) -> None:
    from tests.integration.agent_process import edgecoder

    response = chat(trio.a, "Name a colour.", stream=False)
    assert response.status_code == 200, response.text

    def prices() -> list[int]:
        db = sqlite3.connect(f"file:{trio.a.agent.data_dir / 'edgecoder.db'}?mode=ro", uri=True)
        rows = db.execute("SELECT body FROM receipts WHERE role = 'origin'").fetchall()
        db.close()
        return [json.loads(body)["price"] for (body,) in rows]

    def spent() -> dict[str, int]:
        return {k["name"]: k["spent_mc"] for k in admin(trio.a, "/admin/keys")["keys"]}

    # Every chat in this module was alice's: she paid for every task, the admin for none
    # (each receipt is kept, then paid and charged: waited for, not raced).
    wait_until(lambda: spent()["alice"] == sum(prices()) > 0, what="alice charged")
    assert spent()["root"] == 0
    # A budget of what she spent leaves her nothing for a peer's work.
    data = ("--data-dir", str(trio.a.agent.data_dir))
    capped = edgecoder("keys", "budget", "alice", str(spent()["alice"]), *data,
                       env=trio.a.agent.env)  # fmt: skip
    assert capped.returncode == 0, capped.stderr
    refused = chat(trio.a, "Name another.", stream=False)
    assert refused.status_code == 402, refused.text
    error = refused.json()["error"]
    assert error["code"] == "insufficient_credits"
    assert error["message"].startswith("API key 'alice' has 0.000 of its")
    lifted = edgecoder("keys", "budget", "alice", "none", *data, env=trio.a.agent.env)
    assert lifted.returncode == 0, lifted.stderr
    assert chat(trio.a, "Name a third.", stream=False).status_code == 200


def test_a_prompt_that_fits_no_model_in_the_mesh_is_refused_clearly(trio: Trio) -> None:
    response = chat(trio.a, "word " * 40_000, stream=True)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert "fits no" in error["message"]


def test_a_model_nobody_serves_is_not_found(trio: Trio) -> None:
    body = {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(f"{trio.a.url}/v1/chat/completions", json=body, timeout=30,
                          headers={"Authorization": f"Bearer {trio.a.key}"})  # fmt: skip
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_the_requester_lists_the_models_its_peers_serve(trio: Trio) -> None:
    response = httpx.get(f"{trio.a.url}/v1/models", timeout=10,
                         headers={"Authorization": f"Bearer {trio.a.key}"})  # fmt: skip
    assert "gemma3:270m" in [m["id"] for m in response.json()["data"]]


def test_the_cli_lists_tasks(trio: Trio) -> None:
    from tests.integration.agent_process import edgecoder

    chat(trio.a, "Hi.", stream=False)
    listed = edgecoder("tasks", "--url", trio.a.url, "--api-key", trio.a.admin_key,
                       env=trio.a.agent.env)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert "offered by this node" in listed.stdout
    assert "done" in listed.stdout


def test_a_client_that_goes_away_cancels_the_work_on_the_worker(trio: Trio) -> None:
    body = {"model": "gemma3:270m", "stream": True, "max_tokens": 400, "ignore_eos": True,
            "messages": [{"role": "user", "content": "Tell me a very long story."}]}  # fmt: skip
    headers = {"Authorization": f"Bearer {trio.a.key}"}
    url = f"{trio.a.url}/v1/chat/completions"
    with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as response:
        worker = trio.workers[response.headers["x-edgecoder-node"]]
        seen = 0
        for line in response.iter_lines():
            seen += line.startswith("data: {")
            if seen >= 5:
                break  # leaving the block closes the connection

    def ended(node: ModelNode, key: str, state: str) -> bool:
        rows = admin(node, "/admin/tasks")[key]
        return bool(rows) and rows[0]["state"] == state

    wait_until(lambda: ended(trio.a, "tasks", "cancelled"))
    wait_until(lambda: ended(worker, "runs", "cancelled"))
    run = runs_of(worker)[0]
    assert run["output_tokens"] == 0  # it never reached its end
    # The worker's slot is free again: the next request runs at once.
    assert chat(trio.a, "Hi.", stream=False).status_code == 200


def test_credits_follow_the_receipts_and_every_node_holds_every_chain(trio: Trio) -> None:
    nodes = [trio.a, trio.b, trio.c]
    assert chat(trio.a, "One more.", stream=False).status_code == 200

    def all_countersigned() -> bool:
        done = [t for t in admin(trio.a, "/admin/tasks")["tasks"] if t["state"] == "done"]
        return all(t["receipt"] == "countersigned" for t in done)

    wait_until(all_countersigned, what="every receipt countersigned")
    views = {n.node_id: admin(n, "/admin/ledger?limit=1000") for n in nodes}
    origin = views[trio.a.node_id]
    paid = sum(e["body"]["amount"] for e in origin["entries"] if e["body"]["kind"] == "spend")
    earned = sum(e["body"]["amount"] for w in trio.workers for e in views[w]["entries"]
                 if e["body"]["kind"] == "earn")  # fmt: skip
    assert paid > 0
    assert paid == earned  # what the requester paid, its workers earned
    # One economy: the same network key everywhere, and nothing made or lost in it.
    assert len({v["network_key"] for v in views.values()}) == 1
    assert sum(v["balance"] for v in views.values()) == sum(v["allowance"] for v in views.values())

    def holds_every_chain(node: ModelNode) -> bool:
        db = sqlite3.connect(f"file:{node.agent.data_dir / 'edgecoder.db'}?mode=ro", uri=True)
        try:
            held = dict(db.execute("SELECT node, MAX(seq) FROM ledger_entries GROUP BY node"))
        finally:
            db.close()
        return all(held.get(n) == v["head"]["seq"] for n, v in views.items() if v["head"]["seq"])

    for node in nodes:  # each fetched and verified the others' chains from the gossiped heads
        wait_until(lambda node=node: holds_every_chain(node), what=f"{node.node_id} in sync")

    def proven(node: ModelNode) -> bool:
        """Whether the node's newest checkpoint lists its current head, with a proof."""
        view = admin(node, "/admin/ledger")
        cp, head = view["checkpoint"], view["head"]
        if cp is None or cp["proof"] is None:
            return False
        own = leaf(node.node_id, head["seq"], head["hash"])
        return verify_proof(own, [tuple(s) for s in cp["proof"]], bytes.fromhex(cp["root"]))

    for node in nodes:  # the leader seals every epoch; everyone keeps its own proof
        wait_until(lambda node=node: proven(node), what=f"{node.node_id}'s inclusion proof")
