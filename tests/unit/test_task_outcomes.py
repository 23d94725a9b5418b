"""What the task protocol promises a client, on the in-memory mesh (:mod:`tests.inmemory`).

Real origins and workers in one loop, with scripted backends and faults switched on per
node: a worker that dies mid-stream or stalls past its lease is replaced and the answer
continues from what was sent; a slow prefill is kept alive by heartbeats; under faults
no (task, attempt) runs twice and every task finishes once; a worker whose record
differs from the origin's numbers refuses to countersign; a client that goes away
cancels the worker's generation; no message but the sealed grant carries the prompt; a
grant the worker refuses goes to another; a deadline that passes in the queue, an error
that would happen anywhere, and attempts exhausted end the task clearly. The same
outcomes with real processes, sockets and the model are in ``tests/integration`` and
``tests/netns``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from pathlib import Path

import pytest

from edgecoder.errors import BackendUnavailableError, BadRequestError, PayloadError, StorageError
from edgecoder.events import Event, ReceiptSigned
from edgecoder.inference.types import Delta
from edgecoder.security.payloads import open_sealed
from edgecoder.tasks.messages import Grant
from edgecoder.tasks.transport import MessageKind
from tests.inmemory import Mesh, Script, collect, remote_task, run_one

pytestmark = pytest.mark.anyio

REPLY = "one two three four five six seven eight nine ten"


def offers_of(mesh: Mesh, attempt: int) -> list[str]:
    """The workers offered ``attempt`` of any task."""
    return [m.recipient for m in mesh.sent_to(MessageKind.OFFER) if m.body["attempt"] == attempt]


# -- failover -------------------------------------------------------------------------


async def test_a_worker_that_dies_mid_stream_is_replaced_and_the_answer_continues(
    tmp_path: Path,
) -> None:
    async with Mesh.open(tmp_path, workers=3, script=Script(reply=REPLY)) as mesh:
        dead = mesh.sabotage(die_after=4)  # the admission and about three words
        task = remote_task(mesh, "a long answer")
        deltas = await collect(mesh.origin, task)
        # One continuous answer: every word once, one admission, one finish.
        assert "".join(d.text for d in deltas) == REPLY
        assert deltas.count(Delta()) == 1
        assert [d.finish_reason for d in deltas if d.finish_reason] == ["stop"]
        assert deltas[-1].usage is not None
        assert deltas[-1].usage.completion_tokens == len(REPLY.split())
        first, second = mesh.generations_of("a long answer")
        assert first.worker == dead[0]
        assert first.state == "cancelled"  # it stopped when its node died
        assert first.text
        assert second.continue_from == first.text  # the replacement continued from there
        assert second.state == "done"
        # The dead worker is excluded from the next attempt.
        assert task.attempt == 2
        assert task.worker != dead[0]
        assert dead[0] not in offers_of(mesh, 2)
        assert mesh.runs == {(task.task_id, 1): 1, (task.task_id, 2): 1}


async def test_a_stalled_worker_loses_its_lease_is_told_to_cancel_and_is_replaced(
    tmp_path: Path,
) -> None:
    async with Mesh.open(tmp_path, workers=3, script=Script(reply=REPLY), lease_ms=150) as mesh:
        stalled = mesh.sabotage(stall_after=3)  # silent, its stream left open
        task = remote_task(mesh, "then silence")
        assert await run_one(mesh.origin, task) == REPLY
        assert task.attempt == 2
        assert task.worker != stalled[0]
        assert mesh.origin.stats["failovers"] == 1
        await mesh.until(
            lambda: bool(mesh.sent_to(MessageKind.CANCEL, recipient=stalled[0])),
            "a cancel notice to the stalled worker",
        )
        first = mesh.generations_of("then silence")[0]
        await mesh.until(lambda: first.state == "cancelled", "the stalled generation stopped")

        async def run_ended() -> bool:
            return [(r.attempt, r.state) for r in await mesh.runs_of(stalled[0])] == [
                (1, "cancelled")
            ]

        await mesh.until(run_ended, "the stalled run recorded as cancelled")
        assert not await mesh.receipt_of(stalled[0], task.task_id)


async def test_a_slow_prefill_is_kept_alive_by_heartbeats(tmp_path: Path) -> None:
    # Reading the prompt takes longer than the lease; the heartbeats renew it.
    script = Script(reply="worth the wait", admit_delay_s=0.7)
    async with Mesh.open(tmp_path, workers=2, script=script, lease_ms=300) as mesh:
        task = remote_task(mesh, "a long prompt")
        assert await run_one(mesh.origin, task) == "worth the wait"
        assert task.attempt == 1
        assert mesh.origin.stats["failovers"] == 0


async def test_an_unreachable_worker_is_routed_around(tmp_path: Path) -> None:
    async with Mesh.open(tmp_path, workers=3) as mesh:
        lost, *others = sorted(mesh.workers)
        mesh.switches[lost].unreachable = True
        task = remote_task(mesh, "elsewhere", ranking=[lost, *others])
        assert await run_one(mesh.origin, task) == "ok"
        assert task.attempt == 1
        assert task.worker in others
        assert [m.refused for m in mesh.sent_to(MessageKind.OFFER, recipient=lost)] == [
            "unreachable"
        ]


# -- exactly once -----------------------------------------------------------------------


async def test_under_faults_no_attempt_runs_twice_and_every_task_finishes_once(
    tmp_path: Path,
) -> None:
    script = Script(reply="a b c", word_delay_s=0.005)
    async with Mesh.open(
        tmp_path, workers=10, origins=3, script=script, offer_timeout_ms=60, lease_ms=200
    ) as mesh:
        mesh.delay_s, mesh.jitter_s = 0.005, 0.03
        dying, stalling = mesh.sabotage(die_after=2, times=2), mesh.sabotage(stall_after=2)
        origins = list(mesh.origins.values())
        tasks = [remote_task(mesh, f"task {i}") for i in range(60)]
        limit = asyncio.Semaphore(12)

        async def one(i: int) -> str:
            async with limit:
                return await run_one(origins[i % 3], tasks[i])

        assert await asyncio.gather(*(one(i) for i in range(60))) == ["a b c"] * 60
        faulty = set(dying + stalling)
        assert len(faulty) == 3
        # At most one run per (task, attempt), counted by the mesh and by the workers.
        assert set(mesh.runs.values()) == {1}
        recorded: Counter[tuple[str, int]] = Counter()
        for worker in mesh.workers:
            recorded.update((r.task_id, r.attempt) for r in await mesh.runs_of(worker))
        assert recorded == mesh.runs
        # Every task's answer came from exactly one finished generation.
        done = Counter(g.prompt for g in mesh.generations if g.state == "done")
        assert done == {f"task {i}": 1 for i in range(60)}
        # Only the faulty workers cost an attempt.
        assert all(t.excluded <= faulty for t in tasks)
        assert all(t.attempt == 1 + len(t.excluded) for t in tasks)
        assert sum(t.attempt > 1 for t in tasks) >= 3


# -- receipts ---------------------------------------------------------------------------


async def test_a_worker_whose_record_differs_refuses_to_countersign(tmp_path: Path) -> None:
    async with Mesh.open(tmp_path, workers=2, script=Script(reply="three little words")) as mesh:
        honest, liar = sorted(mesh.workers)
        mesh.switches[liar].lie_tokens = 5  # it reports more than it recorded
        origin_id = next(iter(mesh.origins))

        fair = remote_task(mesh, "fair", ranking=[honest])
        assert await run_one(mesh.origin, fair) == "three little words"

        async def countersigned() -> bool:
            receipt = await mesh.receipt_of(origin_id, fair.task_id)
            return receipt is not None and bool(receipt["worker_sig"])

        await mesh.until(countersigned, "the honest worker's countersignature")
        kept = await mesh.receipt_of(honest, fair.task_id)
        assert kept is not None
        assert kept["role"] == "worker"
        assert kept["origin_sig"]
        assert kept["worker_sig"]
        assert kept["body"]["output_tokens"] == 3

        inflated = remote_task(mesh, "inflated", ranking=[liar])
        assert await run_one(mesh.origin, inflated) == "three little words"
        await mesh.until(
            lambda: any(m.refused for m in mesh.sent_to(MessageKind.RECEIPT, recipient=liar)),
            "the liar's answer to the receipt",
        )
        [asked] = mesh.sent_to(MessageKind.RECEIPT, recipient=liar)
        assert asked.refused == "receipt_mismatch"
        own = await mesh.receipt_of(origin_id, inflated.task_id)
        assert own is not None
        assert own["role"] == "origin"
        assert own["origin_sig"]
        assert own["worker_sig"] == ""  # the origin keeps its own signed copy only
        assert own["body"]["output_tokens"] == 3 + 5
        assert await mesh.receipt_of(liar, inflated.task_id) is None


async def test_both_sides_publish_their_receipt_signatures_once_kept(tmp_path: Path) -> None:
    async with Mesh.open(tmp_path, workers=1, script=Script(reply="a b")) as mesh:
        [worker_id] = mesh.workers
        origin_id = next(iter(mesh.origins))
        heard: dict[str, list[ReceiptSigned]] = {origin_id: [], worker_id: []}
        for node_id, seen in heard.items():

            def hear(event: Event, seen: list[ReceiptSigned] = seen) -> None:
                assert isinstance(event, ReceiptSigned)
                seen.append(event)

            mesh.events[node_id].subscribe(hear, {ReceiptSigned.kind})
        task = remote_task(mesh, "sign it")
        assert await run_one(mesh.origin, task) == "a b"
        await mesh.until(lambda: len(heard[origin_id]) == 2, "the countersigned receipt")
        signed, countersigned = heard[origin_id]
        [worker_side] = heard[worker_id]
        # The origin's own signature first, then both; the worker's one event has both.
        assert (signed.role, signed.worker_sig) == ("origin", "")
        assert countersigned.role == "origin"
        assert worker_side.role == "worker"
        assert signed.origin_sig == countersigned.origin_sig == worker_side.origin_sig
        assert countersigned.worker_sig == worker_side.worker_sig != ""
        assert dict(signed.body) == dict(worker_side.body)
        assert signed.body["task_id"] == task.task_id
        # Each was kept before it was heard of.
        for node_id, event in ((origin_id, countersigned), (worker_id, worker_side)):
            kept = await mesh.receipt_of(node_id, task.task_id)
            assert kept is not None
            assert (kept["origin_sig"], kept["worker_sig"]) == (
                event.origin_sig, event.worker_sig)  # fmt: skip


async def test_a_worker_that_cannot_keep_a_receipt_does_not_countersign_it(
    tmp_path: Path,
) -> None:
    async with Mesh.open(tmp_path, workers=1, script=Script(reply="a b")) as mesh:
        [worker_id] = mesh.workers
        origin_id = next(iter(mesh.origins))

        async def full_disk(event: Event) -> None:
            raise StorageError("data dir is full (No space left on device)")

        mesh.events[worker_id].keep(full_disk, {ReceiptSigned.kind})
        task = remote_task(mesh, "unkept")
        assert await run_one(mesh.origin, task) == "a b"
        await mesh.until(
            lambda: any(m.refused or m.answer for m in mesh.sent_to(MessageKind.RECEIPT)),
            "the worker's answer to the receipt",
        )
        [asked] = mesh.sent_to(MessageKind.RECEIPT)
        assert asked.refused == "storage_unavailable"
        own = await mesh.receipt_of(origin_id, task.task_id)
        assert own is not None
        assert own["worker_sig"] == ""  # no countersignature came back


# -- the client -------------------------------------------------------------------------


async def test_a_client_that_goes_away_cancels_the_generation_on_the_worker(
    tmp_path: Path,
) -> None:
    hold = asyncio.Event()  # every word after the first waits: the generation stays busy
    async with Mesh.open(tmp_path, workers=1, script=Script(reply=REPLY, hold=hold)) as mesh:
        worker = next(iter(mesh.workers))
        origin_id = next(iter(mesh.origins))
        task = remote_task(mesh, "never mind")
        stream = mesh.origin.run(task)
        assert await anext(stream) == Delta()  # admitted
        assert (await anext(stream)).text == "one"
        await stream.aclose()  # the client went away

        generation = mesh.generations_of("never mind")[0]
        await mesh.until(lambda: generation.state == "cancelled", "the generation cancelled")
        await mesh.until(
            lambda: bool(mesh.sent_to(MessageKind.CANCEL, recipient=worker)), "a cancel notice"
        )

        async def ended(node_id: str, rows: str) -> bool:
            found = await (mesh.runs_of if rows == "runs" else mesh.tasks_of)(node_id)
            return bool(found) and found[0].state == "cancelled"

        await mesh.until(lambda: ended(worker, "runs"), "the worker's run cancelled")
        await mesh.until(lambda: ended(origin_id, "tasks"), "the origin's task cancelled")
        assert (await mesh.runs_of(worker))[0].output_tokens == 0  # it never reached its end
        # The worker's slot is free again: the next task runs there.
        hold.set()
        assert await run_one(mesh.origin, remote_task(mesh, "next")) == REPLY


# -- privacy ----------------------------------------------------------------------------


async def test_no_message_but_the_sealed_grant_carries_the_prompt(tmp_path: Path) -> None:
    secret, answer = "zebra-quartz-7781 lantern", "obsidian-heron-42"
    async with Mesh.open(tmp_path, workers=3, script=Script(reply=answer)) as mesh:
        task = remote_task(mesh, f"Repeat: {secret}")
        assert await run_one(mesh.origin, task) == answer
        await mesh.until(
            lambda: any(m.answer for m in mesh.sent_to(MessageKind.RECEIPT)), "the receipt"
        )
        kinds = {m.kind for m in mesh.messages}
        assert {MessageKind.OFFER, MessageKind.CLAIM, MessageKind.RUN} <= kinds
        for message in mesh.messages:
            if message.kind != MessageKind.RUN:
                assert "zebra" not in json.dumps([message.body, message.answer])
        [run] = mesh.sent_to(MessageKind.RUN)
        grant = Grant(**run.body)
        sealed = base64.b64decode(grant.payload)
        assert b"zebra" not in sealed
        assert "zebra" not in json.dumps(run.body)
        # Only the grantee can open it, and the prompt is inside.
        opened = open_sealed(mesh.identities[run.recipient], task.task_id, sealed)
        assert secret.encode() in opened
        other = next(node_id for node_id in mesh.workers if node_id != run.recipient)
        with pytest.raises(PayloadError):
            open_sealed(mesh.identities[other], task.task_id, sealed)
        # The answer travels sealed too.
        assert run.lines
        for line in run.lines:
            assert b"obsidian" not in line
            assert b"obsidian" not in base64.b64decode(line)


# -- refusals and the end of a task ------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "code"),
    [({"forget_claims": True}, "not_claimed"), ({"skew_ms": 3_600_000}, "expired")],
)
async def test_a_grant_the_worker_refuses_goes_to_another_worker(
    tmp_path: Path, fault: dict[str, object], code: str
) -> None:
    async with Mesh.open(tmp_path, workers=2, script=Script(reply="fine")) as mesh:
        refuser = mesh.sabotage(**fault)  # it lost its claims, or its clock ran past the deadline
        task = remote_task(mesh, "try again")
        assert await run_one(mesh.origin, task) == "fine"
        assert [m.refused for m in mesh.sent_to(MessageKind.RUN, recipient=refuser[0])] == [code]
        assert task.attempt == 2
        assert task.worker != refuser[0]
        assert [g.worker for g in mesh.generations] == [task.worker]
        assert mesh.runs == {(task.task_id, 2): 1}


async def test_a_deadline_that_passes_in_the_queue_ends_the_task_and_nobody_runs_it(
    tmp_path: Path,
) -> None:
    queue = asyncio.Event()  # never set: the backend is busy with other work
    async with Mesh.open(tmp_path, workers=2, script=Script(queue=queue), deadline_s=1) as mesh:
        granted: list[str] = []

        def near_the_deadline(node_id: str, grant: Grant) -> None:
            granted.append(node_id)
            mesh.clock.advance(grant.deadline_ms - mesh.clock.now_ms() - 100)

        mesh.on_run.append(near_the_deadline)
        task = remote_task(mesh, "too late")
        task.claim_patience_s = 0.3
        with pytest.raises(BackendUnavailableError):
            await run_one(mesh.origin, task)
        # The worker gave up waiting at the deadline; nobody generated anything.
        [queued] = mesh.generations
        assert queued.worker == granted[0]
        assert queued.state == "cancelled"
        assert not mesh.executions
        assert granted == [queued.worker]
        assert mesh.runs == {(task.task_id, 1): 1}
        # Past the deadline, any offer is refused as expired.
        late = [m for m in mesh.sent_to(MessageKind.OFFER) if m.body["attempt"] > 1]
        assert all(m.answer == {"result": "expired"} for m in late)

        async def failed() -> bool:
            return [r.state for r in await mesh.runs_of(granted[0])] == ["failed"]

        await mesh.until(failed, "the queued run recorded as failed")


async def test_an_error_that_would_happen_anywhere_fails_the_task_at_once(
    tmp_path: Path,
) -> None:
    async with Mesh.open(tmp_path, workers=3, script=Script(fail="invalid_request")) as mesh:
        task = remote_task(mesh, "malformed")
        with pytest.raises(BadRequestError):
            await run_one(mesh.origin, task)
        assert task.attempt == 1
        assert len(mesh.generations) == 1
        assert mesh.origin.stats["failovers"] == 0


async def test_a_task_whose_every_attempt_fails_ends_after_max_attempts(tmp_path: Path) -> None:
    script = Script(reply="a b c", fail="backend_unavailable", fail_after=1)
    async with Mesh.open(tmp_path, workers=3, script=script, max_attempts=2) as mesh:
        origin_id = next(iter(mesh.origins))
        task = remote_task(mesh, "doomed")
        with pytest.raises(BackendUnavailableError, match="2 attempts"):
            await run_one(mesh.origin, task)
        assert task.attempt == 2
        assert mesh.runs == {(task.task_id, 1): 1, (task.task_id, 2): 1}
        assert len({g.worker for g in mesh.generations}) == 2  # the third never ran it
        assert all(g.state == "failed" for g in mesh.generations)

        async def recorded() -> bool:
            rows = await mesh.tasks_of(origin_id)
            return bool(rows) and (rows[0].state, rows[0].attempts) == ("failed", 2)

        await mesh.until(recorded, "the task recorded as failed after two attempts")
