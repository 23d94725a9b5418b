"""The claim-delay protocol under load, in one loop: real origins and workers joined by an
in-memory transport that can delay every message or refuse offers as overloaded.

Claims that arrive after the first round's wait still win (the attempt widens, it does
not restart); a worker holding its two claims per slot answers ``busy``; a mesh whose
every worker is busy is retried with a backoff and refused after the patience; and with
messages slower than the offer timeout, every task still runs exactly once.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edgecoder.clock import SystemClock
from edgecoder.config import Config, TasksConfig
from edgecoder.errors import BackendUnavailableError, PeerTransportError
from edgecoder.inference.types import ChatMessage, ChatRequest, Delta, SamplingParams, Usage
from edgecoder.security.identity import NodeIdentity
from edgecoder.storage.database import Database
from edgecoder.tasks import origin as origin_module
from edgecoder.tasks.arbiter import CLOSED, GRANTED, AttemptArbiter
from edgecoder.tasks.fitness import Fit
from edgecoder.tasks.messages import Claim, parse_claim, parse_grant, parse_notice, parse_offer
from edgecoder.tasks.origin import Origin, RemoteTask
from edgecoder.tasks.transport import MessageKind
from edgecoder.tasks.worker import Worker, WorkerHost
from tests.adverts import advert, model

pytestmark = pytest.mark.anyio

MODEL = "m"
ADVERT = advert(model(MODEL), prefill_tps=1000)


class Mesh:
    """Nodes by id, and an in-memory transport for each of them."""

    def __init__(self) -> None:
        self.origins: dict[str, Origin] = {}
        self.workers: dict[str, Worker] = {}
        self.keys: dict[str, bytes] = {}
        self.delay_s = 0.0
        self.jitter_s = 0.0
        self.overloaded: set[str] = set()
        """Workers whose listener sheds offers (503 overloaded)."""
        self.unreachable: set[str] = set()
        """Nodes whose answers are lost (a timeout: the sender cannot tell what happened)."""
        self.sent: Counter[str] = Counter()
        self.executions: Counter[str] = Counter()
        self.rng = random.Random(7)

    def transport(self, sender: str) -> Transport:
        return Transport(self, sender)

    async def hop(self) -> None:
        await asyncio.sleep(self.delay_s + self.rng.uniform(0, self.jitter_s))


class Transport:
    def __init__(self, mesh: Mesh, sender: str) -> None:
        self.mesh = mesh
        self.sender = sender

    async def post(self, node_id: str, kind: MessageKind, body: dict[str, Any]) -> dict[str, Any]:
        mesh = self.mesh
        mesh.sent[kind] += 1
        await mesh.hop()
        if node_id in mesh.unreachable:
            raise PeerTransportError("unreachable", "timed out", reachable=False)
        if kind == MessageKind.OFFER and node_id in mesh.overloaded:
            raise PeerTransportError("overloaded", "too busy", reachable=True, retry_after_s=1)
        if kind == MessageKind.CLAIM:
            answer = {"result": mesh.origins[node_id].on_claim(parse_claim(body, self.sender))}
        elif kind == MessageKind.OFFER:
            answer = {"result": mesh.workers[node_id].consider(parse_offer(body, self.sender))}
        elif kind in (MessageKind.CLOSE, MessageKind.CANCEL):
            notice = parse_notice(body)
            worker = mesh.workers[node_id]
            stop = worker.close if kind == MessageKind.CLOSE else worker.cancel
            answer = {"stopped": stop(notice.task_id, notice.attempt)}
        elif kind == MessageKind.RECEIPT:
            answer = {"worker_sig": await mesh.workers[node_id].countersign(body, self.sender)}
        else:
            raise AssertionError(kind)
        await mesh.hop()
        return answer

    def stream(self, node_id: str, kind: MessageKind, body: dict[str, Any]) -> Any:
        mesh, sender = self.mesh, self.sender

        class Exchange:
            async def __aenter__(self) -> AsyncIterator[bytes]:
                mesh.sent[kind] += 1
                await mesh.hop()
                worker = mesh.workers[node_id]
                try:
                    lines = await worker.accept(parse_grant(body, node_id), sender)
                except Exception as exc:
                    raise PeerTransportError(
                        getattr(exc, "code", "x"), str(exc), reachable=True
                    ) from None
                self.lines = lines

                async def stripped() -> AsyncIterator[bytes]:
                    async for line in lines:
                        yield line.strip()

                return stripped()

            async def __aexit__(self, *exc: object) -> None:
                await self.lines.aclose()  # type: ignore[attr-defined]

        return Exchange()


def config(**tasks: Any) -> Config:
    base = {"claim_delay_max_ms": 40, "claim_jitter_ms": 5, "claim_stagger_ms": 10,
            "offer_timeout_ms": 100, "lease_ms": 2000}  # fmt: skip
    return Config(tasks=TasksConfig(**{**base, **tasks}))


async def build(
    tmp_path: Path, workers: int, origins: int = 1, **tasks: Any
) -> tuple[Mesh, list[Database]]:
    mesh = Mesh()
    cfg = config(**tasks)
    databases = []
    clock = SystemClock()
    for i in range(workers + origins):
        identity = NodeIdentity.generate()
        node_id = identity.node_id
        mesh.keys[node_id] = identity.public_key
        (tmp_path / str(i)).mkdir()
        database = await Database.open(tmp_path / str(i))
        databases.append(database)
        transport = mesh.transport(node_id)
        common: dict[str, Any] = {"identity": identity, "config": cfg, "clock": clock,
                                  "database": database, "transport": transport}  # fmt: skip
        if i < workers:

            async def execute(request: Any, node_id: str = node_id) -> AsyncIterator[Delta]:
                yield Delta()
                mesh.executions[request.messages[0].content] += 1
                await asyncio.sleep(0.01)
                yield Delta(text="ok")
                yield Delta(finish_reason="stop", usage=Usage(3, 1))

            host = WorkerHost(advert=lambda: ADVERT, in_flight=lambda: 0, execute=execute,
                              peer_key=mesh.keys.get)  # fmt: skip
            mesh.workers[node_id] = Worker(**common, host=host, rng=random.Random(i))
        else:
            mesh.origins[node_id] = Origin(**common, peer_key=mesh.keys.get)
    return mesh, databases


def remote_task(mesh: Mesh, content: str) -> RemoteTask:
    request = ChatRequest(MODEL, (ChatMessage("user", content),), SamplingParams(max_tokens=1))

    def candidates(exclude: frozenset[str]) -> list[Fit]:
        ids = sorted(set(mesh.workers) - exclude)
        mesh.rng.shuffle(ids)
        return [Fit(node_id, 100, True, False) for node_id in ids]

    return RemoteTask(request=request, prompt_tokens=3, candidates=candidates)


async def run_one(origin: Origin, task: RemoteTask) -> str:
    text = ""
    async for delta in origin.run(task):
        text += delta.text
    return text


async def close_all(mesh: Mesh, databases: list[Database]) -> None:
    for worker in mesh.workers.values():
        await worker.aclose()
    for origin in mesh.origins.values():
        await origin.aclose()
    for database in databases:
        await database.close()


def test_a_widened_attempt_still_grants_only_once() -> None:
    arbiter = AttemptArbiter("t", 1, frozenset({"a"}))
    late = Claim("t", 1, "b", 10)
    assert arbiter.claim(late, 0) == CLOSED  # not offered to b yet
    arbiter.widen(frozenset({"b", "c"}))
    assert arbiter.claim(late, 0) == GRANTED
    arbiter.widen(frozenset({"d"}))
    assert arbiter.claim(Claim("t", 1, "a", 1), 0) == CLOSED
    assert arbiter.claim(Claim("t", 1, "d", 1), 0) == CLOSED


async def test_claims_slower_than_the_offer_timeout_still_win_the_same_attempt(
    tmp_path: Path,
) -> None:
    mesh, databases = await build(tmp_path, workers=8, offer_timeout_ms=50)
    mesh.delay_s = 0.08  # a claim's round trip takes three offer timeouts
    origin = next(iter(mesh.origins.values()))
    try:
        task = remote_task(mesh, "slow mesh")
        assert await run_one(origin, task) == "ok"
        assert task.attempt == 1  # widened, not restarted: the late claims stayed valid
        assert mesh.executions == {"slow mesh": 1}
        assert origin.stats["grants"] == 1
    finally:
        await close_all(mesh, databases)


async def test_a_worker_holding_two_claims_per_slot_answers_busy(tmp_path: Path) -> None:
    mesh, databases = await build(tmp_path, workers=1)
    worker = next(iter(mesh.workers.values()))
    origin_id = next(iter(mesh.origins))
    try:
        offers = [
            parse_offer(
                {
                    "task_id": f"{i:032x}",
                    "attempt": 1,
                    "origin": origin_id,
                    "origin_key": mesh.keys[origin_id].hex(),
                    "kind": "chat",
                    "model": MODEL,
                    "prompt_tokens": 3,
                    "max_tokens": 1,
                    "deadline_ms": 2**50,
                    "price_pct": 100,
                    "rank": 0,
                },
                origin_id,
            )
            for i in range(3)
        ]
        mesh.unreachable.add(origin_id)  # the claims' answers are lost: they might be granted
        assert [worker.consider(o) for o in offers[:2]] == ["considering", "considering"]
        await asyncio.sleep(0.2)  # both timers fired: two claims held
        assert worker.consider(offers[2]) == "busy"
        worker.close(offers[0].task_id, 1)  # one of them lost: room again
        assert worker.consider(offers[2]) == "considering"
    finally:
        await close_all(mesh, databases)


async def test_offers_refused_as_overloaded_move_on_at_once_and_a_busy_mesh_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An offer timeout no test would wait out: declined offers must end rounds at once.
    mesh, databases = await build(tmp_path, workers=6, offer_timeout_ms=3_600_000)
    origin = next(iter(mesh.origins.values()))
    ids = sorted(mesh.workers)
    mesh.overloaded = set(ids[:-1])  # only one worker takes offers
    try:
        task = remote_task(mesh, "find the free one")
        assert await run_one(origin, task) == "ok"
        assert mesh.executions == {"find the free one": 1}
        mesh.overloaded = set(ids)
        impatient = remote_task(mesh, "nobody")
        impatient.claim_patience_s = 0.3  # the caller could run it itself
        with pytest.raises(BackendUnavailableError, match="busy"):
            await run_one(origin, impatient)
        monkeypatch.setattr(origin_module, "CLAIM_PATIENCE_S", 1.0)
        with pytest.raises(BackendUnavailableError, match="busy"):
            await run_one(origin, remote_task(mesh, "nobody"))
        assert "nobody" not in mesh.executions
        # Backoff between passes: far fewer offers than a tight loop would send.
        assert origin.stats["rounds"] < 40
    finally:
        await close_all(mesh, databases)


async def test_many_tasks_over_a_slow_mesh_each_run_exactly_once(tmp_path: Path) -> None:
    mesh, databases = await build(tmp_path, workers=10, origins=3, offer_timeout_ms=60)
    mesh.delay_s, mesh.jitter_s = 0.02, 0.08  # hops slower than the claim delays
    origins = list(mesh.origins.values())
    try:
        tasks = [remote_task(mesh, f"task {i}") for i in range(60)]
        limit = asyncio.Semaphore(12)

        async def one(i: int) -> str:
            async with limit:
                return await run_one(origins[i % 3], tasks[i])

        results = await asyncio.gather(*(one(i) for i in range(60)))
        assert results == ["ok"] * 60
        assert mesh.executions == {f"task {i}": 1 for i in range(60)}
        grants = sum(o.stats["grants"] for o in origins)
        assert grants == 60
        assert all(t.attempt == 1 for t in tasks)
    finally:
        await close_all(mesh, databases)
