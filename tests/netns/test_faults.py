"""The fault suite: real agents with the real model in network namespaces, hurt on purpose.

Two requester-only origins and three single-slot workers, each in its own namespace, found
by mDNS, under client load. Faults: ``kill -9`` of origins and workers at random instants
with streams in flight, over several seeded rounds, each victim restarted on its data dir;
a worker stalled with ``SIGSTOP`` past its lease, then resumed; a worker's wall clock
moved ±10 minutes and back (libfaketime; its monotonic clock is left alone), once at start
and once mid-stream. After each, the nodes' own records (``/admin/tasks``, their
``receipts`` tables, ``/healthz``) must show that no accepted task was lost and none ran
twice: every task either completed for its client exactly once or, when its origin died,
is reported ``interrupted`` after the restart; an attempt ran on at most one worker; at
most one worker holds a countersigned receipt per task, for the attempt that produced the
answer. Each test prints its figures as one JSON line (``-s`` or ``-rP`` shows them); set
``FAULT_SEED`` to replay a run's kills.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.agent_process import edgecoder
from tests.netns.faults import (
    FINAL,
    FaultNode,
    Fingerprints,
    Load,
    Outcome,
    audit,
    faketime_library,
    run_batch,
    settle,
    stream_chat,
    wait_until,
)
from tests.netns.lan import Lan, netns_available

pytestmark = [pytest.mark.netns, pytest.mark.integration, pytest.mark.slow, pytest.mark.model]

LEASE_MS = 5000
ORIGINS = 2
WORKERS = 3
ROUNDS = ("origin", "origin", "origin", "worker", "worker", "worker", "worker", "both")
"""The victims of the kill rounds, shuffled by the seed."""
SKEW_S = 600
REPORT: dict[str, dict[str, Any]] = {}


class FaultMesh:
    """The five agents, and the faults injected into them so far."""

    def __init__(self, root: Path) -> None:
        self.faketime = faketime_library()
        self.lan = Lan(ORIGINS + WORKERS)
        self.origins: list[FaultNode] = []
        self.workers: list[FaultNode] = []
        for i in range(ORIGINS + WORKERS):
            worker = i >= ORIGINS
            node = FaultNode(self.lan, i, root, slots=1 if worker else 0, lease_ms=LEASE_MS,
                             faketime=self.faketime if worker else None)  # fmt: skip
            (self.workers if worker else self.origins).append(node)
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.started()
        self.ready()

    @property
    def nodes(self) -> list[FaultNode]:
        return [*self.origins, *self.workers]

    def worker(self, node_id: str) -> FaultNode:
        return next(w for w in self.workers if w.node_id == node_id)

    def ready(self, timeout: float = 180) -> None:
        """Wait until every origin sees every worker alive and taking tasks."""
        expected = {w.node_id for w in self.workers}
        for origin in self.origins:

            def sees_all(origin: FaultNode = origin) -> bool:
                return origin.workers_seen() == expected

            wait_until(sees_all, timeout, f"{origin.name} sees all {WORKERS} workers")
            wait_until(origin.funded, timeout, f"{origin.name}'s allowance")

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        self.lan.close()


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultMesh]:
    reason = netns_available()
    if reason is not None:
        pytest.skip(f"network namespaces unavailable: {reason}")
    group = FaultMesh(tmp_path_factory.mktemp("faults"))
    try:
        yield group
    finally:
        group.close()
        faults, figures = Counter[str](), Counter[str]()
        for part in REPORT.values():
            faults.update(part["faults"])
            figures.update({k: v for k, v in part["figures"].items() if isinstance(v, int)})
        print("fault-suite total:", json.dumps({"faults": dict(sorted(faults.items())),
                                                **dict(sorted(figures.items()))}))  # fmt: skip


def report(name: str, faults: Counter[str], figures: dict[str, Any], **extra: Any) -> None:
    """Print one test's figures as a JSON line, and keep them for the suite's total."""
    REPORT[name] = {"faults": dict(faults), "figures": figures}
    print(f"fault-suite {name}:", json.dumps({"faults": faults, **extra, **figures},
                                             sort_keys=True))  # fmt: skip


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def row_of(origin: FaultNode, outcome: Outcome, since_ms: int) -> dict[str, Any]:
    rows = [t for t in origin.tasks()["tasks"] if t["created_ms"] >= since_ms
            and (t["prompt_est"], t["max_tokens"]) == outcome.fingerprint]  # fmt: skip
    assert len(rows) == 1, rows
    return dict(rows[0])


# -- SIGSTOP past the lease -------------------------------------------------------------


@pytest.mark.timeout(600)
def test_a_worker_stalled_past_its_lease_is_replaced_and_its_late_result_is_not_used(
    mesh: FaultMesh,
) -> None:
    mesh.ready()
    since = now_ms()
    prompt, estimate, budget = Fingerprints("stall", [120]).next(0)
    outcome = Outcome(0, estimate, budget)
    reader = threading.Thread(target=stream_chat, args=(mesh.origins[0], outcome, prompt))
    reader.start()
    wait_until(lambda: outcome.texts >= 5 or outcome.ended, 120, "the first tokens")
    assert not outcome.ended, outcome
    victim = mesh.worker(outcome.worker)
    faults = Counter[str]()
    victim.pause()
    faults["sigstop"] += 1
    try:
        reader.join(300)
        assert not reader.is_alive(), "the client's stream hung"
        # One whole answer, one finish, from the replacement.
        assert outcome.complete, outcome
        task = row_of(mesh.origins[0], outcome, since)
        assert task["state"] == "done"
        assert task["attempts"] == 2
        assert task["worker"] != victim.node_id
        # Its lease passed while it was stopped; now it wakes and finds its exchange gone.
    finally:
        victim.resume()
    settle(mesh.nodes)
    late = [r for r in victim.tasks()["runs"] if r["task_id"] == task["task_id"]]
    assert [(r["attempt"], r["state"] in {"done", "cancelled", "failed"}) for r in late] == [
        (1, True)
    ]
    assert not [r for r in victim.receipts() if r["task_id"] == task["task_id"]]
    result = audit(mesh.origins, mesh.workers, [outcome], since)
    assert not result.problems, result.problems
    mesh.ready()  # the resumed worker is a member again
    report("stall", faults, result.figures, late_run_state=late[0]["state"], lease_ms=LEASE_MS)


# -- kill -9 at random instants ---------------------------------------------------------


def streaming_on(load: Load, origin: int | None = None, worker: str = "") -> Outcome | None:
    """A client stream that is receiving tokens now, through ``origin`` or from ``worker``."""
    for out in list(load.outcomes):
        if (out.in_flight and out.texts >= 1 and (origin is None or out.origin == origin)
                and (not worker or out.worker == worker)):  # fmt: skip
            return out
    return None


def cli_tasks(node: FaultNode) -> list[dict[str, Any]]:
    """The tasks ``edgecoder tasks --json`` lists for ``node``."""
    result = edgecoder("tasks", "--json", "--limit", "1000", "--url", node.agent.api_url,
                       "--api-key", node.admin_key, env=node.agent.env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout)["tasks"])


@pytest.mark.timeout(900)
def test_kill_9_of_origins_and_workers_loses_no_accepted_task_and_runs_none_twice(
    mesh: FaultMesh,
) -> None:
    seed = int(os.environ.get("FAULT_SEED") or random.SystemRandom().randrange(2**32))
    print(f"fault-suite kill seed: {seed} (FAULT_SEED={seed} replays the choices)")
    rng = random.Random(seed)
    rounds = list(ROUNDS)
    rng.shuffle(rounds)
    mesh.ready()
    since = now_ms()
    load = Load(mesh.origins, clients=6, fingerprints=Fingerprints("kill", range(40, 48)))
    log: list[dict[str, Any]] = []
    faults = Counter[str]()
    hits: list[tuple[str, Outcome]] = []
    try:
        for number, kind in enumerate(rounds, 1):
            victims: list[FaultNode] = []
            if kind in ("origin", "both"):
                victims.append(rng.choice(mesh.origins))
            if kind in ("worker", "both"):
                victims.append(rng.choice(mesh.workers))
            delay = rng.uniform(0, 0.25)
            downtime = rng.uniform(0.5, 2.0)
            # Wait for a stream in flight on (or through) the first victim, then strike.
            first = victims[0]

            def target(first: FaultNode = first) -> Outcome | None:
                if first in mesh.origins:
                    return streaming_on(load, origin=mesh.origins.index(first))
                return streaming_on(load, worker=first.node_id)

            wait_until(lambda: target() is not None, 120, f"a stream on {first.name}")
            time.sleep(delay)
            hit = target()
            in_flight = sum(1 for o in load.outcomes if o.in_flight)
            for victim in victims:
                victim.kill()
                faults[f"kill_{'origin' if victim in mesh.origins else 'worker'}"] += 1
            if hit is not None:
                hits.append((kind, hit))
            log.append({"round": number, "victims": [v.name for v in victims],
                        "delay_s": round(delay, 3), "downtime_s": round(downtime, 3),
                        "client_streams_in_flight": in_flight})  # fmt: skip
            time.sleep(downtime)
            for victim in victims:
                victim.restart()
            mesh.ready()
    finally:
        outcomes = load.stop()
        print("fault-suite kill rounds:", json.dumps(log))
    settle(mesh.nodes)
    # The operator's view says the same: nothing an origin accepted is left open.
    for origin in mesh.origins:
        listed = cli_tasks(origin)
        assert listed, f"edgecoder tasks lists nothing on {origin.name}"
        assert all(t["state"] in FINAL for t in listed if t["created_ms"] >= since), listed
    result = audit(mesh.origins, mesh.workers, outcomes, since)
    report("kill", faults, result.figures, seed=seed, rounds=len(rounds))
    assert not result.problems, result.problems
    assert result.figures["lost"] == 0
    assert result.figures["duplicated"] == 0
    # The kills found work in flight: a stream through a killed origin broke and its task
    # reads 'interrupted' after the restart; a stream from a killed worker failed over.
    origin_hits = [o for kind, o in hits if kind in ("origin", "both") and not o.complete]
    assert origin_hits, "no origin kill broke a stream in flight"
    assert result.figures.get("state_interrupted", 0) >= len(origin_hits)
    assert result.figures.get("failed_over", 0) >= 1, "no worker kill caused a failover"


# -- wall-clock jumps -------------------------------------------------------------------


def wall_clock_offset_s(node: FaultNode) -> float:
    """How far the node's wall clock is from ours, read from its HTTP ``Date`` header."""
    response = httpx.get(f"{node.agent.api_url}/healthz", timeout=30)
    stamp = email.utils.parsedate_to_datetime(response.headers["date"]).timestamp()
    return stamp - time.time()


def clock_at(node: FaultNode, offset_s: int) -> bool:
    return abs(wall_clock_offset_s(node) - offset_s) < 5


def skew_refusals(nodes: list[FaultNode]) -> dict[str, int]:
    return {node.name: node.refused()["skew"] for node in nodes}


def refusing(before: dict[str, int], nodes: list[FaultNode]) -> bool:
    """Whether one of ``nodes`` refused more signed requests for skew than ``before``."""
    return any(n.refused()["skew"] > before[n.name] for n in nodes)


def routed_around(mesh: FaultMesh, node: FaultNode) -> bool:
    """Whether no origin counts ``node`` among the live workers any more."""
    return all(node.node_id not in origin.workers_seen() for origin in mesh.origins)


def skewed_phase(
    mesh: FaultMesh, fingerprints: Fingerprints, offset: int, restart: bool
) -> tuple[list[Outcome], dict[str, Any]]:
    """Move the last worker's clock by ``offset`` s (restarting it so, or live); run tasks.

    Its signed requests are refused for skew (``/healthz`` security.refused) and, live, it
    refuses its peers' too; its peers stop counting it as alive; every task completes on
    the others.
    """
    skewed, others = mesh.workers[-1], mesh.workers[:-1]
    before = skew_refusals(mesh.nodes)
    runs_before = len(skewed.tasks()["runs"])
    skewed.shift_clock(offset)
    if restart:
        skewed.agent.stop()
        skewed.restart()
    wait_until(lambda: clock_at(skewed, offset), 60, "the clock offset applied")
    wait_until(lambda: refusing(before, mesh.origins), 120, "an origin refusing it for skew")
    if not restart:  # a restart forgets the counts; peers soon stop calling a dead node
        wait_until(lambda: refusing(before, [skewed]), 120, "the node refusing its peers")
    wait_until(lambda: routed_around(mesh, skewed), 120, "the origins dropping it")
    batch = run_batch(mesh.origins, fingerprints, 8, concurrency=4)
    assert all(o.complete for o in batch), [o for o in batch if not o.complete]
    assert len(skewed.tasks()["runs"]) == runs_before, "the skewed node ran a task"
    assert {o.worker for o in batch} <= {w.node_id for w in others}
    after = skew_refusals(mesh.nodes)
    if restart:
        before[skewed.name] = 0
    return batch, {"offset_s": offset, "restarted": restart,
                   "skew_refused": {k: after[k] - before[k] for k in after}}  # fmt: skip


def rejoin(
    mesh: FaultMesh, fingerprints: Fingerprints, node: FaultNode, timeout: float = 180
) -> list[Outcome]:
    """Set ``node``'s clock right; wait until the origins see it; send tasks until it runs one."""
    node.shift_clock(0)
    mesh.ready(timeout)
    outcomes: list[Outcome] = []
    for _ in range(10):
        batch = run_batch(mesh.origins, fingerprints, 6, concurrency=6)
        outcomes += batch
        assert all(o.complete for o in batch), [o for o in batch if not o.complete]
        if any(o.worker == node.node_id for o in batch):
            return outcomes
    raise AssertionError(f"{node.name} rejoined but took none of {len(outcomes)} tasks")


@pytest.fixture
def clock_worker(mesh: FaultMesh) -> Iterator[FaultNode]:
    """The worker whose clock the test moves; its clock is set right again afterwards."""
    if mesh.faketime is None:
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    mesh.ready()
    try:
        yield mesh.workers[-1]
    finally:
        for worker in mesh.workers:
            worker.shift_clock(0)


@pytest.mark.timeout(900)
def test_a_worker_whose_clock_jumps_is_refused_for_skew_routed_around_and_rejoins(
    mesh: FaultMesh, clock_worker: FaultNode
) -> None:
    fingerprints = Fingerprints("clock", range(16, 20))
    since = now_ms()
    outcomes: list[Outcome] = []
    phases: list[dict[str, Any]] = []
    faults = Counter[str]()
    # 1. While it runs, its clock goes ten minutes slow, then ten minutes fast; each time
    # it is set right again afterwards and must rejoin and take work.
    for offset in (-SKEW_S, SKEW_S):
        batch, phase = skewed_phase(mesh, fingerprints, offset, restart=False)
        faults["clock_jump"] += 2
        outcomes += batch + rejoin(mesh, fingerprints, clock_worker)
        phases.append(phase)
    # 2. A jump mid-stream: the worker running it goes ten minutes ahead. The lease and the
    # task's deadline run on the monotonic clock, so the stream finishes there, once.
    prompt, estimate, _ = fingerprints.next(0)
    long = Outcome(0, estimate, 400)
    reader = threading.Thread(target=stream_chat, args=(mesh.origins[0], long, prompt))
    reader.start()
    wait_until(lambda: long.texts >= 3 or long.ended, 120, "the first tokens")
    jumped = mesh.worker(long.worker)
    jumped.shift_clock(SKEW_S)
    faults["clock_jump"] += 1
    wait_until(lambda: long.ended or clock_at(jumped, SKEW_S), 60, "the jump applied")
    mid_stream = not long.ended
    reader.join(300)
    outcomes.append(long)
    assert long.complete, long
    task = row_of(mesh.origins[0], long, since)
    assert (task["state"], task["attempts"], task["worker"]) == ("done", 1, jumped.node_id)
    run = next(r for r in jumped.tasks()["runs"] if r["task_id"] == task["task_id"])
    run_wall_ms = run["finished_ms"] - run["started_ms"]
    if mid_stream:  # its own record of the run spans the jump
        assert run_wall_ms > (SKEW_S - 60) * 1000, run
    outcomes += rejoin(mesh, fingerprints, jumped)
    faults["clock_jump"] += 1
    phases.append({"offset_s": SKEW_S, "mid_stream": mid_stream, "run_wall_ms": run_wall_ms})
    settle(mesh.nodes)
    result = audit(mesh.origins, mesh.workers, outcomes, since)
    report("clock", faults, result.figures, phases=phases)
    assert not result.problems, result.problems
    assert result.figures["lost"] == 0
    assert result.figures["duplicated"] == 0


REJOIN_S = 120
"""Generous next to the ~10 s a rejoin takes here, far below the skew the bug waits out."""


@pytest.mark.timeout(900)
def test_a_worker_started_with_its_clock_ahead_rejoins_once_its_clock_is_right(
    mesh: FaultMesh, clock_worker: FaultNode
) -> None:
    fingerprints = Fingerprints("boot", range(16, 20))
    since = now_ms()
    faults = Counter[str]({"clock_jump": 2})
    rejoined: list[Outcome] = []
    batch, phase = skewed_phase(mesh, fingerprints, SKEW_S, restart=True)
    stuck: AssertionError | None = None
    try:
        rejoined = rejoin(mesh, fingerprints, clock_worker, timeout=REJOIN_S)
    except AssertionError as exc:
        stuck = exc
        # Leave the mesh whole for what follows: a restart on the right clock re-signs.
        clock_worker.agent.stop()
        clock_worker.restart()
        mesh.ready()
    settle(mesh.nodes)
    result = audit(mesh.origins, mesh.workers, batch + rejoined, since)
    report("boot_ahead", faults, result.figures, phase=phase, rejoined=stuck is None)
    assert not result.problems, result.problems
    if stuck is not None:
        raise stuck
