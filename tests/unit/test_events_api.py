"""``GET /admin/events``: the event hub as Server-Sent Events, in process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from edgecoder.events import (
    DEFAULT_STREAM_SIZE,
    EventHub,
    EventStream,
    PeerStateChanged,
    PullProgress,
    TaskFinished,
    TaskStarted,
)
from edgecoder.inference.types import PullProgress as BackendProgress
from tests.inprocess import InProcessNode

pytestmark = pytest.mark.anyio


class Opened:
    """Says when the route has subscribed (the hub's ``stream`` was called)."""

    def __init__(self, hub: EventHub, monkeypatch: pytest.MonkeyPatch) -> None:
        self.event = asyncio.Event()
        self.streams: list[EventStream] = []
        real = hub.stream

        def stream(*args: Any, **kwargs: Any) -> EventStream:
            opened = real(*args, **kwargs)
            self.streams.append(opened)
            self.event.set()
            return opened

        monkeypatch.setattr(hub, "stream", stream)

    async def wait(self) -> None:
        await self.event.wait()


def _events(body: str) -> list[dict[str, Any]]:
    """The ``data:`` payloads of an SSE body (comments skipped)."""
    frames = [f for f in body.split("\n\n") if f.strip()]
    assert all(f.startswith("data: ") for f in frames if not f.startswith(":")), frames
    return [json.loads(f[len("data: ") :]) for f in frames if f.startswith("data: ")]


async def test_the_stream_carries_the_events_asked_for_until_the_node_stops(
    node: InProcessNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = node.services.events
    before = hub.subscriber_count
    opened = Opened(hub, monkeypatch)
    async with node.client() as client:
        request = asyncio.create_task(client.get("/admin/events?kinds=task.started,task.finished"))
        await opened.wait()
        assert hub.subscriber_count == before + 1
        hub.publish(TaskStarted("t1", "w1"))
        hub.publish(PeerStateChanged("n1", "alive", None))  # not asked for
        hub.publish(TaskFinished("t1", "done"))
        hub.close()  # the node stops: streams end
        response = await request
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-store"
    assert _events(response.text) == [
        {"kind": "task.started", "task_id": "t1", "worker": "w1"},
        {"kind": "task.finished", "task_id": "t1", "state": "done"},
    ]
    assert hub.subscriber_count == before


async def test_a_reader_that_falls_behind_loses_the_oldest_and_is_told_how_many(
    node: InProcessNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = node.services.events
    opened = Opened(hub, monkeypatch)
    extra = 44
    async with node.client() as client:
        request = asyncio.create_task(client.get("/admin/events"))
        await opened.wait()
        # Published without a pause: the reader cannot run in between, so the queue fills.
        for i in range(DEFAULT_STREAM_SIZE + extra):
            hub.publish(TaskStarted(f"t{i}", "w"))
        assert opened.streams[0].pending == DEFAULT_STREAM_SIZE
        hub.close()
        response = await request
    events = _events(response.text)
    assert events[0] == {"kind": "missed", "count": extra}
    assert [e["task_id"] for e in events[1:]] == [
        f"t{i}" for i in range(extra, DEFAULT_STREAM_SIZE + extra)
    ]


async def test_a_client_that_goes_away_leaves_no_subscriber(
    node: InProcessNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = node.services.events
    before = hub.subscriber_count
    opened = Opened(hub, monkeypatch)
    gone = asyncio.Event()
    sent: list[dict[str, Any]] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/admin/events", "raw_path": b"/admin/events",
             "query_string": b"", "client": ("127.0.0.1", 50000), "server": ("node", 80),
             "scheme": "http", "http_version": "1.1", "root_path": "",
             "headers": [(b"authorization", b"Bearer " + node.admin_key.encode())]}  # fmt: skip
    call = asyncio.create_task(node.client_app(scope, receive, send))
    await opened.wait()
    hub.publish(TaskStarted("t1", "w1"))
    gone.set()
    await asyncio.wait_for(call, timeout=60)  # a bound on a hang, not a speed check
    assert hub.subscriber_count == before
    assert sent[0]["status"] == 200
    hub.publish(TaskStarted("t2", "w1"))  # nobody left to hand it to: nothing happens


async def test_only_an_admin_key_may_listen_and_only_to_known_kinds(node: InProcessNode) -> None:
    hub = node.services.events
    before = hub.subscriber_count
    user = await node.services.access.create_key("user", admin=False)
    async with node.client(key=user) as client:
        refused = await client.get("/admin/events")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "admin_required"
    async with node.client() as client:
        bad = await client.get("/admin/events?kinds=task.started,peer.gone")
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["param"] == "kinds"
    assert "peer.gone" in error["message"]
    assert "task.started" in error["message"]  # the known kinds are listed
    assert hub.subscriber_count == before


async def test_operations_publish_properties_and_pull_progress(
    node: InProcessNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = node.services.events
    opened = Opened(hub, monkeypatch)

    async def pull(model: str) -> AsyncIterator[BackendProgress]:
        yield BackendProgress("pulling manifest")
        yield BackendProgress("downloading", completed=5, total=10)
        yield BackendProgress("downloading", completed=10, total=10)

    monkeypatch.setattr(node.backend, "pull", pull)
    async with node.client() as client:
        request = asyncio.create_task(
            client.get("/admin/events?kinds=properties.changed,pull.progress")
        )
        await opened.wait()
        assert (await client.put("/admin/mode", json={"mode": "local-only"})).status_code == 200
        assert (await client.put("/admin/mode", json={"mode": "local-only"})).status_code == 200
        assert (await client.put("/admin/owner-busy", json={"busy": True})).status_code == 200
        job = (await client.post("/admin/models/pull", json={"model": "tiny:1b"})).json()
        stream = opened.streams[0]
        finished = asyncio.Event()
        hub.subscribe(
            lambda e: finished.set() if isinstance(e, PullProgress) and e.state != "running"
            else None,
            {PullProgress.kind},
        )  # fmt: skip
        await finished.wait()
        hub.close()
        response = await request
    events = _events(response.text)
    assert stream.missed == 0
    assert events[:2] == [
        {"kind": "properties.changed", "changed": {"Mode": "local-only"}},  # once: then unchanged
        {"kind": "properties.changed", "changed": {"OwnerBusy": True}},
    ]
    progress = [(e["state"], e["status"], e["completed"], e["total"]) for e in events[2:]]
    assert progress == [
        ("running", "pulling manifest", 0, 0),
        ("running", "downloading", 5, 10),
        ("running", "downloading", 10, 10),
        ("done", "success", 10, 10),
    ]
    assert all(e["job_id"] == job["id"] and e["model"] == "tiny:1b" for e in events[2:])
