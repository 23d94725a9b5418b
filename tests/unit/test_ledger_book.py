"""This node's own chain: durable appends, the escrow, and what a failed write leaves."""

from __future__ import annotations

import asyncio
import random
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecoder.clock import SystemClock
from edgecoder.errors import InsufficientCreditsError, LedgerError, StorageError
from edgecoder.events import BalanceChanged, Event, EventHub
from edgecoder.ledger.book import Ledger, Posting
from edgecoder.ledger.entries import TREASURY
from edgecoder.security.identity import NodeIdentity
from edgecoder.storage import ledger_rows
from edgecoder.storage.database import Database

pytestmark = pytest.mark.anyio

ME = NodeIdentity(bytes(range(32)))
WORKER = NodeIdentity(bytes(range(1, 33))).node_id
VOUCH = "ab" * 32


def ledger_over(database: Database, allowance: int = 1000) -> Ledger:
    grant = {VOUCH: allowance}
    return Ledger(ME, database, SystemClock(), EventHub(),
                  vouches=lambda ref, node: grant.get(ref))  # fmt: skip


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path)
    yield database
    await database.close()


async def funded(database: Database, allowance: int = 1000) -> Ledger:
    ledger = ledger_over(database, allowance)
    await ledger.open()
    await ledger.append(Posting("allowance", allowance, TREASURY, VOUCH))
    return ledger


async def test_what_is_appended_is_there_after_a_restart_and_verifies(database: Database) -> None:
    ledger = await funded(database)
    heard: list[Event] = []
    ledger.events.subscribe(heard.append)
    ledger.reserve("t1", 300)
    await ledger.hold("t1")
    async with ledger.payer(WORKER):
        await ledger.pay("t1", WORKER, ledger.spent_to(WORKER) + 120, "cd" * 32)
    assert (ledger.state.balance, ledger.held, ledger.available) == (880, 0, 880)
    assert heard[-1] == BalanceChanged(880, 0, 880)
    again = ledger_over(database)
    await again.open()
    assert (again.state.available, again.state.seq, again.head) == (880, 4, ledger.head)
    assert again.spent_to(WORKER) == 120


async def test_a_task_reserves_once_and_nothing_is_counted_twice(database: Database) -> None:
    ledger = await funded(database)
    ledger.reserve("t1", 600)
    ledger.reserve("t1", 600)  # a retried attempt: no second reservation
    assert ledger.available == 400
    with pytest.raises(InsufficientCreditsError, match=r"up to 0\.500 credits.*0\.400 available"):
        ledger.reserve("t2", 500)
    await ledger.hold("t1")
    await ledger.hold("t1")  # once
    ledger.reserve("t1", 600)  # held already: still once
    assert (ledger.state.held, ledger.available) == (600, 400)
    await ledger.release("t1")
    await ledger.release("t1")
    assert (ledger.held, ledger.available) == (0, 1000)
    ledger.reserve("t3", 200)
    await ledger.release("t3")  # reserved, never held: the reservation goes
    assert ledger.available == 1000


async def test_an_earlier_receipt_after_a_later_one_earns_nothing_more(database: Database) -> None:
    ledger = await funded(database)
    origin = WORKER
    assert await ledger.earn(origin, 300, "r2" * 32) == 300  # r1 (100) was never received
    assert await ledger.earn(origin, 100, "r1" * 32) == 0  # it arrives late: already paid
    assert await ledger.earn(origin, 450, "r3" * 32) == 150
    assert ledger.earned_from(origin) == 450


async def test_a_failed_write_leaves_the_chain_as_it_was(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = await funded(database)
    before = (ledger.state.seq, ledger.state.available, ledger.head)

    async def full(fn: object) -> None:
        raise StorageError("data dir is full")

    monkeypatch.setattr(database, "run", full)
    ledger.reserve("t1", 100)
    with pytest.raises(StorageError):
        await ledger.hold("t1")
    assert (ledger.state.seq, ledger.state.available, ledger.head) == before
    assert ledger.held == 100  # still reserved: the task may try again
    monkeypatch.undo()
    await ledger.hold("t1")
    assert ledger.state.held == 100


async def test_a_cancelled_append_is_in_the_state_if_and_only_if_it_is_on_disk(
    database: Database,
) -> None:
    ledger = await funded(database)
    for _ in range(20):
        ledger.reserve(f"t{ledger.state.seq}", 1)
        job = asyncio.create_task(ledger.hold(f"t{ledger.state.seq}"))
        await asyncio.sleep(random.random() / 1000)
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)
        on_disk = await database.run(lambda c: ledger_rows.entries_of(c, ME.node_id))
        assert ledger.state.seq == len(on_disk)
        assert ledger.head == (on_disk[-1] if on_disk else None)


async def test_a_chain_altered_on_disk_is_refused_at_open(database: Database) -> None:
    await funded(database)
    await database.run(lambda c: c.execute("UPDATE ledger_entries SET amount = 1000000000"))
    with pytest.raises(LedgerError) as caught:
        await ledger_over(database).open()
    assert caught.value.code == "bad_chain"


# -- 10,000 random interleavings -------------------------------------------------------------

steps = st.lists(
    st.tuples(st.sampled_from(["reserve", "hold", "pay", "release"]), st.integers(0, 7),
              st.integers(0, 400)),
    min_size=1, max_size=50,
)  # fmt: skip


def test_no_interleaving_of_holds_payments_releases_and_retries_overspends() -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as d:
        asyncio.run(_interleavings(Path(d)))


async def _interleavings(root: Path) -> None:
    runs = 0

    @settings(max_examples=200, deadline=None, database=None)
    @given(st.lists(steps, min_size=50, max_size=50))
    def check(batches: list[list[tuple[str, int, int]]]) -> None:
        nonlocal runs
        runs += 1
        # hypothesis is synchronous; each example runs in a loop of its own.
        (root / str(runs)).mkdir()
        asyncio.run(_one(root / str(runs), batches))

    await asyncio.to_thread(check)
    assert runs * 50 >= 10_000


async def _one(data_dir: Path, batches: list[list[tuple[str, int, int]]]) -> None:
    database = await Database.open(data_dir)
    try:
        ledger = await funded(database, 1000)
        paid = 0
        for batch in batches:  # each batch runs concurrently: the operations interleave
            await asyncio.gather(*(_step(ledger, op, t, amount) for op, t, amount in batch),
                                 return_exceptions=True)  # fmt: skip
            assert ledger.available >= 0
            assert ledger.state.available >= 0
            paid = ledger.spent_to(WORKER)
            assert paid + ledger.state.balance == 1000  # nothing made, nothing lost
        entries = await database.run(lambda c: ledger_rows.entries_of(c, ME.node_id))
        holds = [e.entry.ref for e in entries if e.entry.kind == "hold"]
        assert len(holds) == len(set(holds))  # never held twice
        reread = ledger_over(database)
        await reread.open()
        assert (reread.state.available, reread.state.held) == (
            ledger.state.available, ledger.state.held)  # fmt: skip
        assert paid <= 1000
    finally:
        await database.close()


async def _step(ledger: Ledger, op: str, t: int, amount: int) -> None:
    task = f"t{t}"
    if op == "reserve":
        ledger.reserve(task, amount)
    elif op == "hold":
        await ledger.hold(task)
    elif op == "release":
        await ledger.release(task)
    else:
        async with ledger.payer(WORKER):
            price = min(amount, ledger.state.holds.get(task, 0))
            await ledger.pay(task, WORKER, ledger.spent_to(WORKER) + price, f"{t:064x}")
