"""The event hub: typed events, local subscribers, bounded streams for remote readers."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging

import pytest

from edgecoder.events import (
    KINDS,
    BalanceChanged,
    Blacklisted,
    CheckpointSealed,
    Event,
    EventHub,
    EventStream,
    Missed,
    PeerStateChanged,
    PropertiesChanged,
    PullProgress,
    ReceiptSigned,
    TaskFinished,
    TaskStarted,
)

pytestmark = pytest.mark.anyio

EXAMPLES: list[Event] = [
    PeerStateChanged("n1", "alive", None),
    TaskStarted("t1", "n2"),
    TaskFinished("t1", "done"),
    ReceiptSigned("origin", {"task_id": "t1", "wall_ms": 5}, "ab" * 64, ""),
    PullProgress(3, "tiny:1b", "running", "downloading", 10, 100),
    PropertiesChanged({"Mode": "local-only"}),
    BalanceChanged(1500, 300, 1200),
    Blacklisted("n3", "n1", "forked its ledger"),
    CheckpointSealed(7, "ab" * 32, "cd" * 32, "n1", True),
]


def test_every_published_kind_has_an_example_with_json_that_round_trips() -> None:
    assert {e.kind for e in EXAMPLES} == KINDS
    assert "missed" not in KINDS
    for event in EXAMPLES:
        data = json.loads(json.dumps(event.as_json()))
        assert data["kind"] == event.kind
        fields = {f.name for f in dataclasses.fields(event)}  # type: ignore[arg-type]
        assert set(data) == {"kind", *fields}
    assert PeerStateChanged("n1", "dead", "suspect").as_json() == {
        "kind": "peer.state", "node_id": "n1", "state": "dead", "previous": "suspect"}  # fmt: skip
    assert PropertiesChanged({"OwnerBusy": True}).as_json() == {
        "kind": "properties.changed", "changed": {"OwnerBusy": True}}  # fmt: skip


def test_events_are_immutable_even_their_mappings() -> None:
    source = {"Mode": "mesh"}
    event = PropertiesChanged(source)
    source["Mode"] = "changed later"
    assert event.changed == {"Mode": "mesh"}
    with pytest.raises(TypeError):
        event.changed["Mode"] = "x"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.changed = {}  # type: ignore[misc]
    receipt = ReceiptSigned("worker", {"a": 1}, "s1", "s2")
    with pytest.raises(TypeError):
        receipt.body["a"] = 2  # type: ignore[index]


def test_subscribers_get_the_kinds_they_asked_for_in_order_until_they_unsubscribe() -> None:
    hub = EventHub()
    everything: list[Event] = []
    tasks: list[Event] = []
    hub.subscribe(everything.append)
    handle = hub.subscribe(tasks.append, {TaskStarted.kind, TaskFinished.kind})
    for event in EXAMPLES:
        hub.publish(event)
    assert everything == EXAMPLES
    assert tasks == [TaskStarted("t1", "n2"), TaskFinished("t1", "done")]
    handle.close()
    handle.close()  # twice is fine
    assert not handle.active
    hub.publish(TaskStarted("t2", "n3"))
    assert tasks == [TaskStarted("t1", "n2"), TaskFinished("t1", "done")]
    assert everything[-1] == TaskStarted("t2", "n3")
    assert hub.subscriber_count == 1


def test_an_unknown_kind_is_refused() -> None:
    hub = EventHub()
    with pytest.raises(ValueError, match=r"peer\.gone"):
        hub.subscribe(lambda e: None, {"peer.state", "peer.gone"})
    with pytest.raises(ValueError, match="missed"):
        hub.stream({"missed"})


def test_a_failing_subscriber_is_logged_once_and_never_stops_the_publisher_or_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = EventHub()
    after: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    sub = hub.subscribe(broken)
    hub.subscribe(after.append)
    with caplog.at_level(logging.ERROR, logger="edgecoder.events"):
        for event in EXAMPLES:
            hub.publish(event)  # never raises
    assert after == EXAMPLES
    assert sub.failures == len(EXAMPLES)
    assert sub.active  # still subscribed: the next event may well work
    failures = [r for r in caplog.records if "subscriber" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].exc_info is not None


def test_a_subscriber_may_unsubscribe_another_while_an_event_is_delivered() -> None:
    hub = EventHub()
    second: list[Event] = []
    handles = []

    def first(event: Event) -> None:
        handles[0].close()

    hub.subscribe(first)
    handles.append(hub.subscribe(second.append))
    hub.publish(TaskStarted("t", "w"))
    assert second == []


async def test_a_stream_yields_what_is_published_after_it_opens() -> None:
    hub = EventHub()
    hub.publish(TaskStarted("before", "w"))
    async with hub.stream({TaskFinished.kind}) as stream:
        assert hub.subscriber_count == 1
        reader = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)  # the reader waits: nothing yet
        assert not reader.done()
        hub.publish(TaskStarted("t", "w"))
        hub.publish(TaskFinished("t", "done"))
        assert await reader == TaskFinished("t", "done")
    assert hub.subscriber_count == 0


async def test_a_slow_stream_loses_the_oldest_events_and_is_told_how_many() -> None:
    hub = EventHub()
    stream = hub.stream(maxsize=3)
    for i in range(10):
        hub.publish(TaskStarted(f"t{i}", "w"))
    assert stream.pending == 3  # memory is bounded by maxsize
    assert await anext(stream) == Missed(7)
    assert [await anext(stream) for _ in range(3)] == [
        TaskStarted("t7", "w"), TaskStarted("t8", "w"), TaskStarted("t9", "w")]  # fmt: skip
    hub.publish(TaskStarted("t10", "w"))
    assert await anext(stream) == TaskStarted("t10", "w")  # caught up: no report
    for i in range(11, 15):
        hub.publish(TaskStarted(f"t{i}", "w"))
    assert await anext(stream) == Missed(1)
    assert stream.missed == 8
    stream.close()


async def test_closing_the_hub_ends_its_streams_after_what_they_hold() -> None:
    hub = EventHub()
    stream = hub.stream()
    reader = asyncio.ensure_future(_collect(stream))
    await asyncio.sleep(0)
    hub.publish(TaskStarted("t", "w"))
    hub.close()
    hub.publish(TaskFinished("t", "done"))  # after the end: not read
    assert await reader == [TaskStarted("t", "w")]
    assert hub.subscriber_count == 0
    assert await _collect(hub.stream()) == []  # a stream opened after close ends at once


async def test_a_cancelled_reader_leaves_no_subscriber_behind() -> None:
    hub = EventHub()

    async def read() -> None:
        async with hub.stream() as stream:
            async for _ in stream:
                pass

    reader = asyncio.ensure_future(read())
    await asyncio.sleep(0)
    assert hub.subscriber_count == 1
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert hub.subscriber_count == 0


async def _collect(stream: EventStream) -> list[Event]:
    return [event async for event in stream]


def test_a_stream_must_hold_at_least_one_event() -> None:
    with pytest.raises(ValueError, match="at least one"):
        EventHub().stream(maxsize=0)


async def test_a_recorded_event_is_kept_by_every_keeper_in_turn_before_anyone_hears_it() -> None:
    hub = EventHub()
    order: list[str] = []

    async def first(event: Event) -> None:
        await asyncio.sleep(0)  # a keeper may take its time: the publisher waits
        order.append("first keeper")

    async def second(event: Event) -> None:
        order.append("second keeper")

    hub.keep(first, {ReceiptSigned.kind})
    hub.keep(second, {ReceiptSigned.kind, TaskStarted.kind})
    hub.subscribe(lambda event: order.append(f"heard {event.kind}"))
    await hub.record(EXAMPLES[3])
    assert order == ["first keeper", "second keeper", "heard receipt.signed"]
    order.clear()
    await hub.record(TaskStarted("t", "n"))  # only the keepers of its kind keep it
    assert order == ["second keeper", "heard task.started"]


async def test_what_a_keeper_could_not_keep_is_raised_and_never_published() -> None:
    hub = EventHub()
    heard: list[Event] = []

    async def full_disk(event: Event) -> None:
        raise OSError("no space left")

    hub.keep(full_disk, {ReceiptSigned.kind})
    hub.subscribe(heard.append)
    with pytest.raises(OSError, match="no space"):
        await hub.record(EXAMPLES[3])
    assert heard == []


def test_a_keeper_keeps_known_kinds_and_at_least_one() -> None:
    hub = EventHub()

    async def keeper(event: Event) -> None:
        return None

    with pytest.raises(ValueError, match="unknown event kind"):
        hub.keep(keeper, {"receipt.lost"})
    with pytest.raises(ValueError, match="at least one"):
        hub.keep(keeper, set())
