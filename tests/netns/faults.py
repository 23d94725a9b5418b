"""Fault-injection helpers: agents that can be killed, stalled and clock-shifted, a client
load that remembers what every request got, and an audit of the nodes' own task records.

Each request carries a fingerprint the origin records with the task — its output budget
(``max_tokens``) and its prompt estimate (``prompt_est``) — so a client's outcome can be
matched to the origin's row without the prompt ever being stored. The audit then reads
``/admin/tasks`` on every node and the ``receipts`` table in each node's SQLite database.
"""

from __future__ import annotations

import glob
import itertools
import json
import signal
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from edgecoder.storage.database import DB_FILE
from edgecoder.tasks.fitness import estimate_prompt_tokens
from tests.integration.agent_process import AgentProcess, edgecoder
from tests.integration.nodes import share_default_model
from tests.netns.lan import Lan
from tests.waiting import wait_until

__all__ = (
    "FINAL",
    "MODEL",
    "FaultNode",
    "Fingerprints",
    "Load",
    "Outcome",
    "audit",
    "faketime_library",
    "run_batch",
    "settle",
    "stream_chat",
    "wait_until",
)

MODEL = "gemma3:270m"
FINAL = frozenset({"done", "failed", "cancelled", "interrupted"})
CONFIG = """
[mesh]
advert_interval_s = 1
[inference]
context_length = 1024
threads = 1
[tasks]
worker_slots = {slots}
lease_ms = {lease_ms}
"""


def faketime_library() -> str | None:
    """The path of libfaketime's preload library, or None when it is not installed."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    found += sorted(glob.glob("/usr/lib/faketime/libfaketime.so.1"))
    return found[0] if found else None


class FaultNode:
    """One agent in namespace *i*: a worker with the real model, or a requester-only origin.

    An origin (``slots=0``) runs without a model (the Ollama backend at a dead port), so
    every request it accepts is a mesh task and nothing it does runs locally. ``faketime``
    starts the agent under libfaketime with its own offset file (``+0``), so that
    :meth:`shift_clock` moves its wall clock while it runs; its monotonic clock is left
    alone (``FAKETIME_DONT_FAKE_MONOTONIC``).
    """

    def __init__(
        self, lan: Lan, i: int, root: Path, *, slots: int, lease_ms: int, faketime: str | None
    ) -> None:
        self.index = i
        self.name = f"{'w' if slots else 'o'}{i}"
        workdir = root / f"n{i}"
        workdir.mkdir()
        (workdir / "edgecoder.toml").write_text(CONFIG.format(slots=slots, lease_ms=lease_ms))
        backend = ("--backend", "llamacpp") if slots else ()
        self.agent = AgentProcess(workdir, *backend, prefix=lan.prefix(i), host=lan.address(i),
                                  mdns=True)  # fmt: skip
        self.agent.env["EDGECODER_MESH_CALIBRATE"] = "false"
        self.clock_file: Path | None = None
        if faketime is not None:
            self.clock_file = workdir / "faketime.rc"
            self.clock_file.write_text("+0\n")
            self.agent.env.update(
                LD_PRELOAD=faketime,
                FAKETIME_TIMESTAMP_FILE=str(self.clock_file),
                FAKETIME_CACHE_DURATION="1",
                FAKETIME_DONT_FAKE_MONOTONIC="1",
            )
        data = ["--data-dir", str(self.agent.data_dir)]
        self.key = self._key("alice", data)
        self.admin_key = self._key("root", [*data, "--admin"])
        if slots:
            share_default_model(self.agent.data_dir)
        self.node_id = ""
        self.paused = False

    def _key(self, name: str, args: list[str]) -> str:
        result = edgecoder("keys", "create", name, *args, env=self.agent.env)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    # -- lifecycle ------------------------------------------------------------------------

    def launch(self) -> None:
        """Start the agent without waiting for it."""
        self.agent.start(wait_ready=False)

    def started(self) -> FaultNode:
        """Wait until the agent is ready; remember its node id."""
        self.agent.wait_for("READY=1", timeout=120)
        node_id = str(self.health()["node_id"])
        assert not self.node_id or node_id == self.node_id, "a restart changed the identity"
        self.node_id = node_id
        return self

    @property
    def pid(self) -> int:
        assert self.agent.proc is not None
        return self.agent.proc.pid

    def alive(self) -> bool:
        return self.agent.proc is not None and self.agent.proc.poll() is None

    def kill(self) -> None:
        """``kill -9``, and reap it."""
        self.agent.stop(signal.SIGKILL)
        self.paused = False

    def restart(self) -> None:
        """Start again on the same data dir, ports and identity."""
        self.launch()
        self.started()

    def pause(self) -> None:
        """``SIGSTOP``: every thread of the agent stops; its sockets stay open."""
        assert self.agent.proc is not None
        self.agent.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """``SIGCONT``."""
        assert self.agent.proc is not None
        self.agent.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def shift_clock(self, seconds: int) -> None:
        """Move this agent's wall clock to real time + ``seconds`` (it applies within 1 s)."""
        assert self.clock_file is not None, "this node was not started under libfaketime"
        self.clock_file.write_text(f"{seconds:+d}\n")

    def close(self) -> None:
        if self.paused:
            self.resume()
        self.agent.close()

    # -- the node's own surfaces ----------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self.agent.get(f"{self.agent.api_url}/healthz")[1]

    def refused(self) -> Counter[str]:
        """Signed mesh requests this node refused, by reason (``/healthz`` security.refused)."""
        return Counter(self.health().get("security", {}).get("refused", {}))

    def admin(self, path: str) -> dict[str, Any]:
        response = httpx.get(f"{self.agent.api_url}{path}", timeout=30,
                             headers={"Authorization": f"Bearer {self.admin_key}"})  # fmt: skip
        assert response.status_code == 200, response.text
        return dict(response.json())

    def tasks(self) -> dict[str, Any]:
        """``/admin/tasks`` with everything it holds (tasks offered here, runs done here)."""
        return self.admin("/admin/tasks?limit=1000")

    def receipts(self) -> list[dict[str, Any]]:
        """Every receipt this node stored, from its SQLite database (read-only)."""
        path = self.agent.data_dir / DB_FILE
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            rows = conn.execute(
                "SELECT task_id, attempt, role, body, worker_sig FROM receipts"
            ).fetchall()
        finally:
            conn.close()
        return [{"task_id": r[0], "attempt": r[1], "role": r[2], "body": json.loads(r[3]),
                 "countersigned": bool(r[4])} for r in rows]  # fmt: skip

    def funded(self) -> bool:
        """Whether this node was granted its allowance (so it can pay for peers' work)."""
        return bool(self.admin("/admin/ledger")["allowance"])

    def workers_seen(self) -> set[str]:
        """Node ids of the workers this node believes alive and able to take tasks."""
        peers = self.admin("/admin/peers")["peers"]
        return {p["node_id"] for p in peers
                if p["state"] == "alive" and p["models"] and p["load"]["slots"]}  # fmt: skip


# -- clients ----------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one client request got."""

    origin: int
    """Index of the origin in the :class:`Load`'s list."""
    prompt_est: int
    max_tokens: int
    status: int | None = None
    worker: str = ""
    texts: int = 0
    finals: list[str] = field(default_factory=list)
    done: bool = False
    errors: list[Any] = field(default_factory=list)
    failure: str = ""
    ended: bool = False

    @property
    def fingerprint(self) -> tuple[int, int]:
        return self.prompt_est, self.max_tokens

    @property
    def accepted(self) -> bool:
        """The origin answered 200: it admitted the task (recorded before the headers)."""
        return self.status == 200

    @property
    def complete(self) -> bool:
        """One whole answer: every chunk, one finish, ``[DONE]``, no error."""
        return (self.accepted and self.done and self.finals == ["length"] and not self.errors
                and not self.failure)  # fmt: skip

    @property
    def in_flight(self) -> bool:
        return self.accepted and not self.ended


def chat_body(content: str, max_tokens: int) -> dict[str, Any]:
    return {"model": MODEL, "stream": True, "max_tokens": max_tokens, "ignore_eos": True,
            "temperature": 0, "messages": [{"role": "user", "content": content}]}  # fmt: skip


def stream_chat(node: FaultNode, outcome: Outcome, content: str, timeout: float = 300) -> None:
    """Send one streamed chat to ``node`` and fill ``outcome`` as the answer arrives."""
    url = f"{node.agent.api_url}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {node.key}"}
    try:
        with httpx.stream("POST", url, json=chat_body(content, outcome.max_tokens),
                          timeout=timeout, headers=headers) as reply:  # fmt: skip
            outcome.status = reply.status_code
            outcome.worker = reply.headers.get("x-edgecoder-node", "")
            if reply.status_code != 200:
                reply.read()
                return
            for line in reply.iter_lines():
                if line == "data: [DONE]":
                    outcome.done = True
                elif line.startswith("data: "):
                    chunk = json.loads(line[6:])
                    if "error" in chunk:
                        outcome.errors.append(chunk["error"])
                        continue
                    for choice in chunk.get("choices", []):
                        if choice["delta"].get("content"):
                            outcome.texts += 1
                        if choice.get("finish_reason"):
                            outcome.finals.append(choice["finish_reason"])
    except Exception as exc:  # a killed origin: what the client saw is the evidence
        outcome.failure = f"{type(exc).__name__}: {exc}"
    finally:
        outcome.ended = True


class Fingerprints:
    """Unique (prompt estimate, max tokens) pairs per origin, and a prompt for each."""

    def __init__(self, tag: str, budgets: Iterable[int]) -> None:
        self.tag = tag
        self.budgets = tuple(budgets)
        self._counters: dict[int, itertools.count[int]] = defaultdict(itertools.count)
        self._lock = threading.Lock()

    def next(self, origin: int) -> tuple[str, int, int]:
        """(prompt, prompt estimate, max tokens) for the next request to ``origin``."""
        with self._lock:
            k = next(self._counters[origin])
        budget = self.budgets[k % len(self.budgets)]
        # Each bucket of requests gets a prompt three characters (one estimated token)
        # longer than the last: with the budget, a pair the origin records with the task.
        words = f"{self.tag} {origin}-{k}: tell a story about the sea and a lighthouse keeper."
        length = 3 * (len(words) // 3 + 1 + k // len(self.budgets))
        prompt = words.ljust(length, ".")
        # The origin's estimate covers the message and the (empty) continuation text.
        return prompt, estimate_prompt_tokens([prompt, ""]), budget


def run_batch(
    origins: list[FaultNode], fingerprints: Fingerprints, count: int, concurrency: int
) -> list[Outcome]:
    """Send ``count`` streamed chats round-robin to ``origins``, ``concurrency`` at a time."""

    def one(i: int) -> Outcome:
        o = i % len(origins)
        prompt, estimate, budget = fingerprints.next(o)
        outcome = Outcome(o, estimate, budget)
        stream_chat(origins[o], outcome, prompt)
        return outcome

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, range(count)))


class Load:
    """``clients`` threads sending streamed chats round-robin to ``origins`` until stopped."""

    def __init__(self, origins: list[FaultNode], clients: int, fingerprints: Fingerprints) -> None:
        self.origins = origins
        self.fingerprints = fingerprints
        self.outcomes: list[Outcome] = []
        self.started_ms = time.time_ns() // 1_000_000
        self._stop = threading.Event()
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True, name=f"client-{i}")
                         for i in range(clients)]  # fmt: skip
        for thread in self._threads:
            thread.start()

    def _client(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                o = next(self._turn) % len(self.origins)
            prompt, estimate, budget = self.fingerprints.next(o)
            outcome = Outcome(o, estimate, budget)
            with self._lock:
                self.outcomes.append(outcome)
            stream_chat(self.origins[o], outcome, prompt)
            if not outcome.accepted:
                self._stop.wait(0.3)  # the origin is down or shed it: do not spin

    def in_flight(self, origin: int) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if o.origin == origin and o.in_flight)

    def completed(self) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if o.complete)

    def stop(self, timeout: float = 600) -> list[Outcome]:
        """Stop sending; wait for the requests in flight; return every outcome."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
            assert not thread.is_alive(), "a client request hung"
        return list(self.outcomes)


# -- the audit --------------------------------------------------------------------------


def settle(nodes: list[FaultNode], timeout: float = 120) -> None:
    """Wait until no live node holds a task or run that is not final."""

    def quiet() -> bool:
        for node in nodes:
            document = node.tasks()
            rows = document["tasks"] + document["runs"]
            if any(row["state"] not in FINAL for row in rows):
                return False
        return True

    wait_until(quiet, timeout, "every task and run final")


@dataclass
class Audit:
    """What the nodes' records say about a set of client requests."""

    figures: dict[str, int]
    problems: list[str]


def audit(
    origins: list[FaultNode], workers: list[FaultNode], outcomes: list[Outcome], since_ms: int
) -> Audit:
    """Check every request against the origin's rows, the workers' runs and all receipts.

    A task is *lost* when the origin accepted it and it neither completed for its client
    nor ended in a reported state (``failed``, ``cancelled``, ``interrupted``); it is
    *duplicated* when its client got more than one answer, an attempt ran on two workers,
    or more than one worker holds a countersigned receipt for it.
    """
    problems: list[str] = []
    worker_ids = {w.node_id: w.name for w in workers}
    rows: dict[tuple[int, tuple[int, int]], list[dict[str, Any]]] = defaultdict(list)
    origin_of: dict[str, int] = {}
    for o, origin in enumerate(origins):
        for task in origin.tasks()["tasks"]:
            if task["created_ms"] >= since_ms:
                rows[o, (task["prompt_est"], task["max_tokens"])].append(task)
                origin_of[task["task_id"]] = o
    asked = {(out.origin, out.fingerprint): out for out in outcomes}
    assert len(asked) == len(outcomes), "fingerprints repeat: the audit cannot match requests"
    for key, found in rows.items():
        if key not in asked:
            problems.append(f"origin {key[0]} holds tasks nobody sent: {found}")
        if len(found) > 1:
            problems.append(f"one request became {len(found)} tasks: {found}")
    tasks = {t["task_id"]: t for found in rows.values() for t in found}

    runs: dict[tuple[str, int], list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    credited: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for worker in workers:
        for run in worker.tasks()["runs"]:
            if run["task_id"] in tasks:
                runs[run["task_id"], run["attempt"]].append((worker.node_id, run))
        for receipt in worker.receipts():
            if receipt["task_id"] in tasks and receipt["role"] == "worker":
                credited[receipt["task_id"]].append((worker.node_id, receipt))
    signed: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for origin in origins:
        for receipt in origin.receipts():
            if receipt["task_id"] in tasks and receipt["role"] == "origin":
                signed[receipt["task_id"]].append(receipt)

    figures: Counter[str] = Counter()
    duplicated: set[str] = set()
    lost: set[str] = set()
    for out in outcomes:
        found = rows.get((out.origin, out.fingerprint), [])
        task = found[0] if found else None
        if len(out.finals) > 1:
            duplicated.add(task["task_id"] if task else repr(out))
            problems.append(f"a client got {len(out.finals)} answers: {out}")
        if task is None:
            if out.accepted:
                lost.add(repr(out))
                problems.append(f"accepted (200) but the origin has no record: {out}")
            else:
                figures["refused_before_acceptance"] += 1
            continue
        state = task["state"]
        figures["accepted"] += 1
        figures[f"state_{state}"] += 1
        if state not in FINAL:
            lost.add(task["task_id"])
            problems.append(f"task left {state}: {task}")
        elif state == "done" and not out.complete:
            lost.add(task["task_id"])
            problems.append(f"done at the origin but the client got no whole answer: {out} {task}")
        elif out.complete and state != "done":
            problems.append(f"the client got an answer but the origin says {state}: {task}")
        elif state == "failed" and out.accepted and not out.errors and not out.failure:
            problems.append(f"failed at the origin but the client saw no error: {out} {task}")
        if out.complete:
            figures["completed"] += 1
            if task["attempts"] > 1:
                figures["failed_over"] += 1
    for task_id, task in tasks.items():
        attempt_runs = {a: r for (t, a), r in runs.items() if t == task_id}
        for attempt, held in attempt_runs.items():
            if len(held) > 1:
                duplicated.add(task_id)
                problems.append(f"attempt {attempt} of {task_id} ran on {len(held)} workers")
            for node_id, run in held:
                if run["state"] not in FINAL:
                    problems.append(f"run left {run['state']} on {worker_ids[node_id]}: {run}")
        if len(credited[task_id]) > 1:
            duplicated.add(task_id)
            problems.append(f"{task_id} credited by {len(credited[task_id])} workers")
        if len(signed[task_id]) > 1:
            duplicated.add(task_id)
            problems.append(f"{task_id}: the origin signed {len(signed[task_id])} receipts")
        done_runs = [(a, n) for a, held in attempt_runs.items() for n, r in held
                     if r["state"] == "done"]  # fmt: skip
        if task["state"] == "done":
            final = (task["attempts"], task["worker"])
            if final not in done_runs:
                problems.append(f"{task_id} done, but {final} recorded no finished run")
            for receipt in signed[task_id] + [r for _, r in credited[task_id]]:
                named = (receipt["body"]["attempt"], receipt["body"]["worker"])
                if named != final:
                    problems.append(f"{task_id}: a receipt for {named}, not the result {final}")
            figures["receipts_countersigned"] += bool(credited[task_id])
            late = [run for run in done_runs if run != final]
        else:
            if credited[task_id] or signed[task_id]:
                problems.append(f"{task_id} ended {task['state']} yet holds a receipt")
            late = done_runs
        # Work finished after its lease expired: done twice, credited once (§7.4).
        figures["late_runs_uncredited"] += len(late)
        figures["runs"] += sum(len(held) for held in attempt_runs.values())
    figures["lost"] = len(lost)
    figures["duplicated"] = len(duplicated)
    return Audit(dict(sorted(figures.items())), problems)
