"""Mesh tasks across network namespaces, with the real model on every worker.

A requester-only node A and workers B and C, each in its own namespace, found by mDNS:
a chat through A streams from a worker named in ``X-EdgeCoder-Node``; ``kill -9`` of the
worker mid-stream and a partition between A and the worker both end with the client's
stream completed by the other worker; no frame between nodes carries the prompt. Then
20 workers race for 500 tasks offered by 3 origins: every task runs exactly once,
counted on the workers.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.agent_process import AgentProcess, edgecoder
from tests.integration.nodes import share_default_model
from tests.netns.lan import Lan, netns_available
from tests.waiting import wait_until

pytestmark = [pytest.mark.netns, pytest.mark.integration, pytest.mark.slow, pytest.mark.model]

MODEL = "gemma3:270m"
CONFIG = """
[mesh]
advert_interval_s = 1
{bootstrap}
[inference]
context_length = 1024
threads = 1
[tasks]
worker_slots = {slots}
lease_ms = {lease_ms}
"""


class Node:
    """One agent in namespace *i* of a LAN, with a user key and an admin key."""

    def __init__(self, lan: Lan, i: int, root: Path, slots: int, bootstrap: str = "",
                 lease_ms: int = 3000) -> None:  # fmt: skip
        workdir = root / f"n{i}"
        workdir.mkdir()
        boot = f'bootstrap = ["{bootstrap}"]' if bootstrap else ""
        (workdir / "edgecoder.toml").write_text(
            CONFIG.format(bootstrap=boot, slots=slots, lease_ms=lease_ms)
        )
        self.agent = AgentProcess(workdir, "--backend", "llamacpp", prefix=lan.prefix(i),
                                  host=lan.address(i), mdns=not bootstrap)  # fmt: skip
        self.agent.env["EDGECODER_MESH_CALIBRATE"] = "false"
        data = ["--data-dir", str(self.agent.data_dir)]
        self.key = self._key("alice", data)
        self.admin_key = self._key("root", [*data, "--admin"])
        share_default_model(self.agent.data_dir)
        self.node_id = ""

    def _key(self, name: str, args: list[str]) -> str:
        result = edgecoder("keys", "create", name, *args, env=self.agent.env)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def started(self) -> Node:
        self.agent.wait_for("READY=1")
        self.node_id = str(self.agent.get(f"{self.agent.api_url}/healthz")[1]["node_id"])
        return self

    def admin(self, path: str) -> dict[str, Any]:
        response = httpx.get(f"{self.agent.api_url}{path}", timeout=20,
                             headers={"Authorization": f"Bearer {self.admin_key}"})  # fmt: skip
        assert response.status_code == 200, response.text
        return dict(response.json())

    def funded(self) -> bool:
        """Whether this node was granted its allowance (so it can pay for peers' work)."""
        return bool(self.admin("/admin/ledger")["allowance"])

    def workers_seen(self) -> int:
        peers = self.admin("/admin/peers")["peers"]
        return sum(1 for p in peers if p["state"] == "alive" and p["models"] and p["load"]["slots"])

    def chat_body(self, content: str, max_tokens: int, *, stream: bool) -> dict[str, Any]:
        return {"model": MODEL, "stream": stream, "max_tokens": max_tokens, "ignore_eos": True,
                "temperature": 0, "messages": [{"role": "user", "content": content}]}  # fmt: skip


def start_all(nodes: list[Node]) -> None:
    for node in nodes:
        node.agent.start(wait_ready=False)
    for node in nodes:
        node.started()


class Trio:
    def __init__(self, root: Path) -> None:
        self.lan = Lan(3)
        self.a = Node(self.lan, 0, root, slots=0)
        self.b = Node(self.lan, 1, root, slots=1)
        self.c = Node(self.lan, 2, root, slots=1)
        start_all([self.a, self.b, self.c])
        self.workers = {n.node_id: n for n in (self.b, self.c)}
        self.index = {self.b.node_id: 1, self.c.node_id: 2}
        self.ready()

    def ready(self) -> None:
        wait_until(lambda: self.a.workers_seen() == 2, timeout=60)
        wait_until(self.a.funded, timeout=60)

    def close(self) -> None:
        for node in (self.a, self.b, self.c):
            node.agent.close()
        self.lan.close()


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    reason = netns_available()
    if reason is not None:
        pytest.skip(f"network namespaces unavailable: {reason}")
    group = Trio(tmp_path_factory.mktemp("trio"))
    try:
        yield group
    finally:
        group.close()


class Stream:
    """A streamed chat through A, read in a thread, so the test can act mid-stream."""

    def __init__(self, node: Node, content: str, max_tokens: int) -> None:
        self.node = node
        self.body = node.chat_body(content, max_tokens, stream=True)
        self.worker = ""
        self.chunks: list[dict[str, Any]] = []
        self.done = False
        self.error: BaseException | None = None
        self.headers_seen = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            url = f"{self.node.agent.api_url}/v1/chat/completions"
            headers = {"Authorization": f"Bearer {self.node.key}"}
            with httpx.stream("POST", url, json=self.body, timeout=120, headers=headers) as reply:
                assert reply.status_code == 200, reply.read()
                self.worker = reply.headers["x-edgecoder-node"]
                self.headers_seen.set()
                for line in reply.iter_lines():
                    if line == "data: [DONE]":
                        self.done = True
                    elif line.startswith("data: "):
                        self.chunks.append(json.loads(line[6:]))
        except BaseException as exc:  # reported by finish()
            self.error = exc
            self.headers_seen.set()

    def text(self) -> str:
        return "".join(c["choices"][0]["delta"].get("content") or ""
                       for c in self.chunks if c.get("choices"))  # fmt: skip

    def finish(self) -> None:
        self._thread.join(timeout=150)
        assert self.error is None, self.error
        assert self.done, "the stream ended without [DONE]"
        errors = [c for c in self.chunks if "error" in c]
        assert not errors, errors
        assert self.chunks[-1]["choices"][0]["finish_reason"] == "length"


def last_task(node: Node) -> dict[str, Any]:
    return dict(node.admin("/admin/tasks")["tasks"][0])


def test_a_chat_through_the_requester_streams_from_a_named_worker(trio: Trio) -> None:
    stream = Stream(trio.a, "Write a haiku about routers.", 8)
    stream.finish()
    assert stream.worker in trio.workers
    assert stream.text().strip()
    task = last_task(trio.a)
    assert task["worker"] == stream.worker
    assert task["attempts"] == 1
    assert task["state"] == "done"


def test_a_worker_killed_mid_stream_is_replaced_and_the_stream_completes(trio: Trio) -> None:
    stream = Stream(trio.a, "Tell a long story about a lighthouse keeper.", 120)
    assert stream.headers_seen.wait(60)
    assert stream.error is None, stream.error
    wait_until(lambda: len(stream.chunks) >= 10, timeout=60)
    victim = trio.workers[stream.worker]
    victim.agent.stop(signal.SIGKILL)
    stream.finish()
    task = last_task(trio.a)
    assert task["state"] == "done"
    assert task["attempts"] == 2
    assert task["worker"] != victim.node_id
    assert task["worker"] in trio.workers
    # The killed worker comes back on its data dir, with the same identity.
    victim.agent.start()
    assert victim.agent.get(f"{victim.agent.api_url}/healthz")[1]["node_id"] == victim.node_id
    trio.ready()


def test_a_partition_from_the_worker_expires_its_lease_and_one_result_arrives(trio: Trio) -> None:
    trio.ready()
    stream = Stream(trio.a, "Describe the sea in many sentences.", 120)
    assert stream.headers_seen.wait(60)
    wait_until(lambda: len(stream.chunks) >= 10, timeout=60)
    cut = trio.index[stream.worker]
    trio.lan.cut(cut)
    try:
        stream.finish()
    finally:
        trio.lan.restore(cut)
    task = last_task(trio.a)
    assert task["state"] == "done"
    assert task["attempts"] == 2
    assert task["worker"] != stream.worker
    finals = [c for c in stream.chunks if c.get("choices") and c["choices"][0]["finish_reason"]]
    assert len(finals) == 1  # one result reached the client


def _ipv4(frame: bytes) -> tuple[str, str] | None:
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return None
    return ".".join(map(str, frame[26:30])), ".".join(map(str, frame[30:34]))


def test_no_frame_between_nodes_carries_the_prompt(trio: Trio) -> None:
    if trio.lan.userspace is None:
        pytest.skip("frame capture needs the user-space switch (this kernel has netem)")
    trio.ready()
    marker = "zebra-quartz-7781 lantern"
    trio.lan.capture(True)
    try:
        response = httpx.post(f"{trio.a.agent.api_url}/v1/chat/completions", timeout=60,
                              json=trio.a.chat_body(f"Repeat: {marker}", 4, stream=False),
                              headers={"Authorization": f"Bearer {trio.a.key}"})  # fmt: skip
    finally:
        frames = trio.lan.capture(False)
    assert response.status_code == 200, response.text
    nodes = {trio.lan.address(i) for i in range(3)}
    between = b"".join(f for f in frames if (ips := _ipv4(f)) and set(ips) <= nodes)
    from_client = b"".join(f for f in frames if (ips := _ipv4(f)) and ips[0] not in nodes)
    assert marker.encode() in from_client  # the capture sees plaintext HTTP...
    assert b"POST /mesh/tasks/offer" in between  # ...and the offers between nodes...
    assert b"/mesh/tasks/run" in between
    assert marker.encode() not in between  # ...none of which carries the prompt.
    assert b"zebra" not in between


# -- 20 workers, 500 tasks, 3 origins ---------------------------------------------------

WORKERS = 20
ORIGINS = 3
TASKS = 500


@pytest.fixture(scope="module")
def crowd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Node]]:
    reason = netns_available()
    if reason is not None:
        pytest.skip(f"network namespaces unavailable: {reason}")
    root = tmp_path_factory.mktemp("crowd")
    lan = Lan(WORKERS + ORIGINS)
    nodes: list[Node] = []
    try:
        seed = Node(lan, 0, root, slots=1)
        seed.agent.mdns = False
        nodes.append(seed)
        for i in range(1, WORKERS + ORIGINS):
            slots = 1 if i < WORKERS else 0
            nodes.append(Node(lan, i, root, slots=slots, bootstrap=seed.agent.mesh_url,
                              lease_ms=10_000))  # fmt: skip
        start_all(nodes)
        for origin in nodes[WORKERS:]:
            wait_until(lambda origin=origin: origin.workers_seen() == WORKERS, timeout=120)
            wait_until(origin.funded, timeout=120)
        yield nodes
    finally:
        for node in nodes:
            node.agent.close()
        lan.close()


def cpu_seconds(nodes: list[Node]) -> dict[str, float]:
    """CPU time used so far by the agents, and by this process (the user-space switch)."""
    tick = os.sysconf("SC_CLK_TCK")
    agents = 0.0
    for node in nodes:
        assert node.agent.proc is not None
        fields = Path(f"/proc/{node.agent.proc.pid}/stat").read_text().rpartition(")")[2].split()
        agents += (int(fields[11]) + int(fields[12])) / tick
    own = os.times()
    return {"agents": agents, "test": own.user + own.system}


def gossip_sent(nodes: list[Node]) -> Counter[str]:
    """Gossip requests the agents have sent so far, by message type."""
    sent: Counter[str] = Counter()
    for node in nodes:
        health = node.agent.get(f"{node.agent.api_url}/healthz")[1]
        sent.update(health.get("mesh", {}).get("load", {}).get("gossip_sent", {}))
    return sent


def diagnostics(nodes: list[Node]) -> dict[str, Any]:
    """What the mesh did under the load: refusals, shed requests, protocol counters."""
    refused: Counter[str] = Counter()
    shed: Counter[str] = Counter()
    dropped = 0
    lags: list[int] = []
    counters: dict[str, Counter[str]] = {"origin": Counter(), "worker": Counter()}
    for node in nodes:
        health = node.agent.get(f"{node.agent.api_url}/healthz")[1]
        refused.update(health.get("security", {}).get("refused", {}))
        load = health.get("mesh", {}).get("load", {})
        shed.update(load.get("shed", {}))
        dropped += int(load.get("gossip_dropped", 0))
        lags.append(int(load.get("worst_loop_lag_ms", 0)))
        document = node.admin("/admin/tasks?limit=1")
        for side, counter in counters.items():
            counter.update({k: v for k, v in document[side].items() if isinstance(v, int)})
    lags.sort()
    return {
        "refused": dict(refused),
        "shed": dict(shed),
        "gossip_dropped": dropped,
        "worst_loop_lag_ms": {"median": lags[len(lags) // 2], "max": lags[-1]},
        **{k: dict(v) for k, v in counters.items()},
    }


def test_twenty_workers_race_for_500_tasks_and_each_runs_exactly_once(crowd: list[Node]) -> None:
    workers, origins = crowd[:WORKERS], crowd[WORKERS:]

    def one(i: int) -> int:
        origin = origins[i % ORIGINS]
        response = httpx.post(f"{origin.agent.api_url}/v1/chat/completions", timeout=300,
                              json=origin.chat_body(f"Task {i}: say ok.", 2, stream=False),
                              headers={"Authorization": f"Bearer {origin.key}"})  # fmt: skip
        return response.status_code

    cpu_before, gossip_before = cpu_seconds(crowd), gossip_sent(crowd)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = Counter(pool.map(one, range(TASKS)))
    elapsed = time.monotonic() - started
    cpu = {k: round(v - cpu_before[k], 1) for k, v in cpu_seconds(crowd).items()}
    gossip = dict(gossip_sent(crowd) - gossip_before)
    print(json.dumps({"statuses": statuses, "seconds": round(elapsed, 1), "cpu_s": cpu,
                      "gossip_sent": gossip, **diagnostics(crowd)}))  # fmt: skip
    assert statuses == {200: TASKS}, statuses
    offered: dict[str, dict[str, Any]] = {}
    claims_received = 0
    for origin in origins:
        document = origin.admin(f"/admin/tasks?limit={TASKS}")
        offered.update({t["task_id"]: t for t in document["tasks"]})
        claims_received += document["origin"]["claims"]
        assert not document["runs"]  # requester-only: it never executed
    assert len(offered) == TASKS
    assert all(t["state"] == "done" for t in offered.values())
    executions: Counter[str] = Counter()
    for worker in workers:
        for run in worker.admin(f"/admin/tasks?limit={TASKS}")["runs"]:
            executions[run["task_id"]] += 1
    assert set(executions) == set(offered)
    duplicates = {task_id: n for task_id, n in executions.items() if n != 1}
    assert not duplicates, duplicates
    busy = sum(1 for w in workers if w.admin("/admin/tasks")["runs"])
    report = {
        "tasks": TASKS,
        "workers": WORKERS,
        "origins": ORIGINS,
        "duplicate_executions": len(duplicates),
        "claim_messages_per_task": round(claims_received / TASKS, 3),
        "claims_per_task_while_open": round(sum(t["claims"] for t in offered.values()) / TASKS, 3),
        "attempts_per_task": round(sum(t["attempts"] for t in offered.values()) / TASKS, 3),
        "workers_used": busy,
        "seconds": round(elapsed, 1),
    }
    print(json.dumps(report))
