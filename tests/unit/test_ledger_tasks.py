"""Credits move with the work (docs/ledger.md §3 to §4), on the in-memory mesh.

Real origins, workers and ledgers in one loop: every finished remote task is paid by its
origin and earned by its worker, each entry naming the receipt; balances match a
recomputation from the receipts and the network sums to zero; a task nobody can pay for
is refused before any message leaves; a failed task gives its hold back; a receipt whose
countersignature was lost is paid by the next one, which restates the total.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edgecoder.errors import InsufficientCreditsError
from edgecoder.ledger.book import Posting
from edgecoder.ledger.entries import TREASURY
from edgecoder.ledger.pricing import price_mc
from edgecoder.security.identity import NodeIdentity
from edgecoder.storage import ledger_rows
from edgecoder.storage import tasks as store
from edgecoder.tasks.receipts import receipt_hash
from edgecoder.tasks.transport import MessageKind
from tests.inmemory import ADVERT, ALLOWANCE, Mesh, Script, remote_task, run_one
from tests.inprocess import InProcessNode

pytestmark = pytest.mark.anyio

SIZE = ADVERT.models[0].size_class


async def test_two_hundred_tasks_balance_to_the_receipts_and_the_network_sums_to_zero(
    tmp_path: Path,
) -> None:
    async with Mesh.open(tmp_path, workers=2, script=Script(reply="a b c d")) as mesh:
        origin_id = next(iter(mesh.origins))
        tasks = [remote_task(mesh, f"task {i}", max_tokens=8) for i in range(200)]
        limit = asyncio.Semaphore(8)

        async def one(i: int) -> str:
            async with limit:
                return await run_one(mesh.origin, tasks[i])

        assert await asyncio.gather(*(one(i) for i in range(200))) == ["a b c d"] * 200

        async def all_countersigned() -> bool:
            receipts = [await mesh.receipt_of(origin_id, t.task_id) for t in tasks]
            return all(r is not None and r["worker_sig"] for r in receipts)

        await mesh.until(all_countersigned, "every receipt countersigned")
        # An independent recomputation from the receipts.
        owed: dict[str, int] = {w: 0 for w in mesh.workers}
        for task in tasks:
            receipt = await mesh.receipt_of(origin_id, task.task_id)
            assert receipt is not None
            body = receipt["body"]
            assert body["price"] == price_mc(body["prompt_tokens"], body["output_tokens"], SIZE,
                                             100)  # fmt: skip
            owed[body["worker"]] += body["price"]
        origin = mesh.ledgers[origin_id]
        assert origin.state.held == 0
        assert origin.state.available == ALLOWANCE - sum(owed.values())
        for worker, amount in owed.items():
            assert mesh.ledgers[worker].state.available == amount
            assert origin.spent_to(worker) == mesh.ledgers[worker].earned_from(origin_id) == amount
        # Zero-sum: what the origin was granted is exactly what everyone holds now.
        assert sum(mesh.ledgers[n].state.balance for n in mesh.ledgers) == ALLOWANCE
        # Each entry names the receipt that caused it, on both sides.
        spends = await mesh.query(origin_id, lambda c: ledger_rows.entries_of(c, origin_id))
        refs = {e.entry.ref for e in spends if e.entry.kind == "spend"}
        hashes = set()
        for task in tasks:
            receipt = await mesh.receipt_of(origin_id, task.task_id)
            assert receipt is not None
            hashes.add(receipt_hash(receipt["body"]))
        assert refs == hashes


async def test_a_task_nobody_can_pay_for_is_refused_before_any_offer(tmp_path: Path) -> None:
    async with Mesh.open(tmp_path, workers=2, allowance=50) as mesh:
        task = remote_task(mesh, "too dear", max_tokens=100)
        with pytest.raises(InsufficientCreditsError, match=r"0\.050 available"):
            await run_one(mesh.origin, task)
        assert mesh.sent_to(MessageKind.OFFER) == []
        assert mesh.ledgers[next(iter(mesh.origins))].available == 50


async def test_a_task_that_fails_gives_its_hold_back(tmp_path: Path) -> None:
    script = Script(reply="a b c", fail="backend_unavailable", fail_after=1)
    async with Mesh.open(tmp_path, workers=2, script=script, max_attempts=2) as mesh:
        origin_id = next(iter(mesh.origins))
        ledger = mesh.ledgers[origin_id]
        with pytest.raises(Exception, match="2 attempts"):
            await run_one(mesh.origin, remote_task(mesh, "doomed", max_tokens=4))
        await mesh.until(lambda: ledger.state.held == 0 and ledger.held == 0, "the release")
        assert ledger.state.available == ALLOWANCE
        kinds = [e.entry.kind for e in await mesh.query(
            origin_id, lambda c: ledger_rows.entries_of(c, origin_id))]  # fmt: skip
        assert kinds == ["allowance", "hold", "release"]  # held once for both attempts


async def test_a_lost_countersignature_is_paid_by_the_next_receipt(tmp_path: Path) -> None:
    async with Mesh.open(tmp_path, workers=1, script=Script(reply="x y")) as mesh:
        [worker_id] = mesh.workers
        origin_id = next(iter(mesh.origins))
        # The first receipt is lost on its way to the worker.
        mesh.switches[worker_id].lose_receipts = 1
        first = remote_task(mesh, "first", max_tokens=4)
        assert await run_one(mesh.origin, first) == "x y"
        await mesh.until(
            lambda: any(m.refused for m in mesh.sent_to(MessageKind.RECEIPT)), "the lost receipt"
        )
        worker = mesh.ledgers[worker_id]
        assert worker.earned_from(origin_id) == 0
        second = remote_task(mesh, "second", max_tokens=4)
        assert await run_one(mesh.origin, second) == "x y"

        async def countersigned() -> bool:
            receipt = await mesh.receipt_of(origin_id, second.task_id)
            return receipt is not None and bool(receipt["worker_sig"])

        await mesh.until(countersigned, "the second receipt countersigned")
        origin = mesh.ledgers[origin_id]
        # The second receipt restated the total: the worker earned both tasks at once.
        assert worker.earned_from(origin_id) == origin.spent_to(worker_id) > 0
        entries = await mesh.query(worker_id, lambda c: ledger_rows.entries_of(c, worker_id))
        assert [(e.entry.kind, e.entry.total) for e in entries] == [
            ("earn", origin.spent_to(worker_id))]  # fmt: skip
        runs = await mesh.query(worker_id, lambda c: store.recent_runs(c, 10))
        assert len(runs) == 2


async def test_the_admin_route_shows_the_balance_and_pages_the_entries(
    node: InProcessNode,
) -> None:
    economy = node.services.economy
    ledger = economy.ledger
    async with node.client() as client:
        empty = (await client.get("/admin/ledger")).json()
        assert (empty["balance"], empty["held"], empty["available"], empty["entries"]) == (
            0, 0, 0, [])  # fmt: skip
        assert empty["head"] == {"seq": 0, "hash": "0" * 64}
        # This node holds a network key and vouches for itself; then two tasks are held.
        key = NodeIdentity.generate()
        economy.network_key, economy.book.network_key = key, key.public_key.hex()
        vouch = await economy.vouch(node.services.node_id, 1000)
        await ledger.append(Posting("allowance", 1000, TREASURY, vouch.hash))
        for task in ("t1", "t2"):
            ledger.reserve(task, 100)
            await ledger.hold(task)
        view = (await client.get("/admin/ledger?limit=2")).json()
        assert (view["balance"], view["held"], view["available"]) == (1000, 200, 800)
        assert view["holds_network_key"] is True
        assert view["network_key"] == key.public_key.hex()
        assert [e["body"]["seq"] for e in view["entries"]] == [3, 2]  # newest first
        assert view["head"] == {"seq": 3, "hash": view["entries"][0]["hash"]}
        older = (await client.get("/admin/ledger?limit=2&before=2")).json()
        assert [(e["body"]["seq"], e["body"]["kind"]) for e in older["entries"]] == [
            (1, "allowance")]  # fmt: skip
        assert (await client.get("/admin/ledger?limit=abc")).status_code == 400
        assert (await client.get("/admin/ledger?before=0")).status_code == 400
        async with node.client(key=None) as anonymous:
            assert (await anonymous.get("/admin/ledger")).status_code == 401
