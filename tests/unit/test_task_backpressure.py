"""The claim-delay protocol under load, in one loop: real origins and workers joined by the
in-memory mesh (:mod:`tests.inmemory`), every message delayed or offers refused as
overloaded.

Claims that arrive after the first round's wait still win (the attempt widens, it does
not restart); a worker holding its two claims per slot answers ``busy``; a mesh whose
every worker is busy is retried with a backoff and refused after the patience; and with
messages slower than the offer timeout, every task still runs exactly once.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from edgecoder.errors import BackendUnavailableError
from edgecoder.tasks.arbiter import CLOSED, GRANTED, AttemptArbiter
from edgecoder.tasks.messages import Claim, parse_offer
from edgecoder.tasks.transport import MessageKind
from tests.inmemory import MODEL, Mesh, Script, remote_task, run_one

pytestmark = pytest.mark.anyio

SCRIPT = Script(word_delay_s=0.01)
"""Each run holds its slot a moment, as a real one does."""


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
    async with Mesh.open(tmp_path, workers=8, script=SCRIPT, offer_timeout_ms=50) as mesh:
        mesh.delay_s = 0.08  # a claim's round trip takes three offer timeouts
        task = remote_task(mesh, "slow mesh")
        assert await run_one(mesh.origin, task) == "ok"
        assert task.attempt == 1  # widened, not restarted: the late claims stayed valid
        assert mesh.executions == {"slow mesh": 1}
        assert mesh.origin.stats["grants"] == 1


async def test_a_worker_holding_two_claims_per_slot_answers_busy(tmp_path: Path) -> None:
    async with Mesh.open(tmp_path, workers=1, script=SCRIPT) as mesh:
        worker = next(iter(mesh.workers.values()))
        origin_id = next(iter(mesh.origins))
        origin_key = mesh.identities[origin_id].public_key.hex()
        offers = [
            parse_offer(
                {
                    "task_id": f"{i:032x}",
                    "attempt": 1,
                    "origin": origin_id,
                    "origin_key": origin_key,
                    "kind": "chat",
                    "model": MODEL,
                    "prompt_tokens": 3,
                    "max_tokens": 1,
                    "deadline_ms": 2**50,
                    "price_pct": 100,
                    "rank": 0,
                    "round_size": 1,
                },
                origin_id,
            )
            for i in range(3)
        ]
        # The claims' answers are lost: they might have been granted.
        mesh.switches[origin_id].unreachable = True
        assert [worker.consider(o) for o in offers[:2]] == ["considering", "considering"]
        lost = lambda: [c for c in mesh.sent_to(MessageKind.CLAIM) if c.refused]  # noqa: E731
        await mesh.until(lambda: len(lost()) == 2, "both timers fired: two claims held")
        assert worker.consider(offers[2]) == "busy"
        worker.close(offers[0].task_id, 1)  # one of them lost: room again
        assert worker.consider(offers[2]) == "considering"


async def test_offers_refused_as_overloaded_move_on_at_once_and_a_busy_mesh_is_refused(
    tmp_path: Path,
) -> None:
    # An offer timeout no test would wait out: declined offers must end rounds at once.
    async with Mesh.open(tmp_path, workers=6, script=SCRIPT, offer_timeout_ms=3_600_000) as mesh:
        origin = mesh.origin
        ids = sorted(mesh.workers)
        for node_id in ids[:-1]:  # only one worker takes offers
            mesh.switches[node_id].shed_retry_after_s = 1
        task = remote_task(mesh, "find the free one")
        assert await run_one(origin, task) == "ok"
        assert mesh.executions == {"find the free one": 1}
        mesh.switches[ids[-1]].shed_retry_after_s = 1
        impatient = remote_task(mesh, "nobody")
        impatient.claim_patience_s = 0.3  # the caller could run it itself
        with pytest.raises(BackendUnavailableError, match="busy"):
            await run_one(origin, impatient)
        tasks = dataclasses.replace(origin.config.tasks, claim_patience_s=1)
        origin.config = dataclasses.replace(origin.config, tasks=tasks)
        with pytest.raises(BackendUnavailableError, match="busy"):
            await run_one(origin, remote_task(mesh, "nobody"))
        assert "nobody" not in mesh.executions
        # Backoff between passes: far fewer offers than a tight loop would send.
        assert origin.stats["rounds"] < 40


async def test_many_tasks_over_a_slow_mesh_each_run_exactly_once(tmp_path: Path) -> None:
    async with Mesh.open(
        tmp_path, workers=10, origins=3, script=SCRIPT, offer_timeout_ms=60
    ) as mesh:
        mesh.delay_s, mesh.jitter_s = 0.02, 0.08  # hops slower than the claim delays
        origins = list(mesh.origins.values())
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
