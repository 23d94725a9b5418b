"""A receipt whose countersignature was lost is sent again, with a backoff, until the worker
countersigns it or refuses it for good, also after the origin restarts (docs/tasks.md §6,
docs/ledger.md §3). On the in-memory mesh, with real origins, workers and ledgers.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from edgecoder.storage import ledger_rows
from edgecoder.storage import tasks as store
from edgecoder.tasks.resending import next_delay_s
from edgecoder.tasks.transport import MessageKind
from tests.inmemory import Mesh, Script, remote_task, run_one

pytestmark = pytest.mark.anyio

FAST = {"receipt_retry_min_ms": 10, "receipt_retry_max_s": 1}
"""Backoff short enough for a test: 10 ms, doubling, at most 1 s."""


def test_the_wait_doubles_from_the_shortest_to_the_longest_and_no_further() -> None:
    delays, delay = [], None
    for _ in range(12):
        delay = next_delay_s(delay, 2.0, 300.0)
        delays.append(delay)
    assert delays == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300, 300]
    assert next_delay_s(None, 5.0, 1.0) == 1.0  # the longest bounds even the first


async def _countersigned(mesh: Mesh, origin: str, task_id: str) -> bool:
    receipt = await mesh.receipt_of(origin, task_id)
    return receipt is not None and bool(receipt["worker_sig"])


async def test_a_receipt_lost_three_times_is_sent_until_the_worker_countersigns_it(
    tmp_path: Path,
) -> None:
    async with Mesh.open(tmp_path, workers=1, script=Script(reply="x y"), **FAST) as mesh:
        [worker_id] = mesh.workers
        origin_id = next(iter(mesh.origins))
        mesh.switches[worker_id].lose_receipts = 3
        task = remote_task(mesh, "lost thrice", max_tokens=4)
        assert await run_one(mesh.origin, task) == "x y"

        async def settled() -> bool:
            return await _countersigned(mesh, origin_id, task.task_id)

        await mesh.until(settled, "the receipt countersigned")
        sent = mesh.sent_to(MessageKind.RECEIPT, recipient=worker_id)
        assert [m.refused for m in sent] == ["unreachable"] * 3 + [None]
        assert {m.body["body"]["task_id"] for m in sent} == {task.task_id}
        assert mesh.origin.stats["receipts_resent"] == 3
        assert mesh.origin.receipts.waiting() == 0
        # Both chains hold it: the worker earned what the origin paid, naming the receipt.
        origin, worker = mesh.ledgers[origin_id], mesh.ledgers[worker_id]
        assert worker.earned_from(origin_id) == origin.spent_to(worker_id) > 0
        kept = await mesh.receipt_of(worker_id, task.task_id)
        own = await mesh.receipt_of(origin_id, task.task_id)
        assert kept is not None
        assert own is not None
        assert kept["worker_sig"] == own["worker_sig"]


async def test_a_receipt_refused_for_good_is_not_sent_again(tmp_path: Path) -> None:
    async with Mesh.open(tmp_path, workers=1, script=Script(reply="x y"), **FAST) as mesh:
        [worker_id] = mesh.workers
        origin_id = next(iter(mesh.origins))
        mesh.switches[worker_id].lose_receipts = 1
        task = remote_task(mesh, "forgotten", max_tokens=4)
        # The worker loses its record of the run before the receipt comes back.
        assert await run_one(mesh.origin, task) == "x y"
        await mesh.until(lambda: mesh.origin.receipts.waiting() == 1, "the receipt waiting")
        await mesh.query(worker_id, lambda c: c.execute("DELETE FROM task_runs"))

        async def refused() -> bool:
            receipt = await mesh.receipt_of(origin_id, task.task_id)
            return receipt is not None and receipt["refused"] == "no_such_run"

        await mesh.until(refused, "the refusal kept")
        assert mesh.origin.receipts.waiting() == 0
        sent = mesh.sent_to(MessageKind.RECEIPT, recipient=worker_id)
        assert [m.refused for m in sent] == ["unreachable", "no_such_run"]
        assert mesh.origin.stats["receipts_refused"] == 1
        [row] = await mesh.tasks_of(origin_id)
        assert row.receipt == "refused"
        # A restart does not send it again: it is settled.
        restarted = await mesh.restart_origin(origin_id)
        assert restarted.receipts.waiting() == 0


async def test_a_receipt_waiting_when_the_origin_stops_is_sent_by_its_next_run(
    tmp_path: Path,
) -> None:
    tasks = {"receipt_retry_min_ms": 600_000}  # nothing is sent again before the restart
    async with Mesh.open(tmp_path, workers=1, script=Script(reply="x y"), **tasks) as mesh:
        [worker_id] = mesh.workers
        origin_id = next(iter(mesh.origins))
        mesh.switches[worker_id].lose_receipts = 2
        first = remote_task(mesh, "before", max_tokens=4)
        second = remote_task(mesh, "also before", max_tokens=4)
        for task in (first, second):
            assert await run_one(mesh.origin, task) == "x y"
        await mesh.until(lambda: mesh.origin.receipts.waiting() == 2, "both receipts waiting")
        paid = mesh.ledgers[origin_id].spent_to(worker_id)
        assert mesh.ledgers[worker_id].earned_from(origin_id) == 0
        config = mesh.configs[origin_id]  # the next run's: a short backoff
        mesh.configs[origin_id] = replace(config, tasks=replace(config.tasks, **FAST))
        restarted = await mesh.restart_origin(origin_id)
        assert restarted.receipts.waiting() == 2

        async def both() -> bool:
            return all([await _countersigned(mesh, origin_id, t.task_id) for t in (first, second)])

        await mesh.until(both, "both receipts countersigned after the restart")
        assert restarted.receipts.waiting() == 0
        assert mesh.ledgers[worker_id].earned_from(origin_id) == paid
        # The worker's chain: one earn per receipt, totals rising, each naming its receipt.
        entries = await mesh.query(worker_id, lambda c: ledger_rows.entries_of(c, worker_id))
        assert [e.entry.kind for e in entries] == ["earn", "earn"]
        assert entries[-1].entry.total == paid
        runs = await mesh.query(worker_id, lambda c: store.recent_runs(c, 10))
        assert len(runs) == 2
