"""The mesh listener under stress, in process: a sender that gives up mid-body is not a
forger, and a node over capacity sheds load with 503 and ``Retry-After``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from edgecoder.adapters.transports import mesh_auth
from edgecoder.adapters.transports.mesh_auth import MeshAuthMiddleware
from edgecoder.adapters.transports.mesh_client import MeshClient
from edgecoder.clock import SystemClock
from edgecoder.config import Config, MeshConfig
from edgecoder.mesh.advert_types import Advert
from edgecoder.mesh.load import COMMITTED, GOSSIP, OFFERS, LoadGauge
from edgecoder.mesh.node import MeshNode
from edgecoder.security.identity import NodeIdentity
from edgecoder.security.mesh_guard import MeshGuard
from edgecoder.speedups import envelope
from tests.adverts import advert

pytestmark = pytest.mark.anyio

SENDER = NodeIdentity(bytes(range(32)))
RECEIVER = NodeIdentity(bytes(range(1, 33)))
PATH = "/mesh/gossip"


def signed_scope(
    body: bytes, *, claimed_body: bytes | None = None, path: str = PATH
) -> dict[str, Any]:
    """An ASGI scope for a POST signed by SENDER for RECEIVER over ``claimed_body``."""
    headers = envelope.sign_request(
        SENDER.secret_key,
        SENDER.public_key,
        "POST",
        path,
        RECEIVER.node_id,
        body if claimed_body is None else claimed_body,
        SystemClock().now_ms(),
    )
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        "client": ("10.0.0.9", 40000),
    }


class Exchange:
    """Feeds ``messages`` to the middleware and records what it sends and what it passes on."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = list(messages)
        self.sent: list[dict[str, Any]] = []
        self.reached_app: list[bytes] = []

    async def receive(self) -> dict[str, Any]:
        if self.messages:
            return self.messages.pop(0)
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        self.reached_app.append(message.get("body", b""))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    def status(self) -> int | None:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        return int(starts[0]["status"]) if starts else None

    def error_code(self) -> str:
        body = b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")
        return str(json.loads(body)["error"]["code"])


def guard() -> MeshGuard:
    return MeshGuard(RECEIVER.node_id, MeshConfig(), SystemClock())


async def test_a_sender_that_disconnects_mid_body_is_not_audited_or_answered() -> None:
    body = b'{"network":"default","msg":{},"records":[]}'
    gate = guard()
    exchange = Exchange(
        [
            {"type": "http.request", "body": body[:10], "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    middleware = MeshAuthMiddleware(exchange.app, guard=gate)
    await middleware(signed_scope(body), exchange.receive, exchange.send)
    assert exchange.sent == []  # nobody left to answer
    assert exchange.reached_app == []
    assert gate.audit.counts() == {}  # not a forged body_hash
    assert middleware.disconnects == 1


async def test_a_body_that_never_finishes_is_answered_408_and_not_audited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mesh_auth, "BODY_TIMEOUT_S", 0.05)
    body = b'{"network":"default","msg":{},"records":[]}'
    gate = guard()
    stalled = asyncio.Event()

    class Stalling(Exchange):
        async def receive(self) -> dict[str, Any]:
            if self.messages:
                return self.messages.pop(0)
            await stalled.wait()  # the rest of the body never comes
            return {"type": "http.disconnect"}

    exchange = Stalling([{"type": "http.request", "body": body[:10], "more_body": True}])
    middleware = MeshAuthMiddleware(exchange.app, guard=gate)
    await middleware(signed_scope(body), exchange.receive, exchange.send)
    assert exchange.status() == 408
    assert exchange.error_code() == "body_timeout"
    assert exchange.reached_app == []
    assert gate.audit.counts() == {}  # slow, not forged
    assert middleware.body_timeouts == 1


async def test_a_whole_body_that_differs_from_its_hash_is_still_refused_as_forged() -> None:
    body = b'{"network":"default","msg":{},"records":[]}'
    gate = guard()
    exchange = Exchange([{"type": "http.request", "body": body, "more_body": False}])
    middleware = MeshAuthMiddleware(exchange.app, guard=gate)
    await middleware(signed_scope(body, claimed_body=body[:10]), exchange.receive, exchange.send)
    assert exchange.status() == 401
    assert exchange.error_code() == "body_hash"
    assert gate.audit.counts() == {"body_hash": 1}


async def test_a_body_in_chunks_reaches_the_route_whole() -> None:
    body = b'{"network":"default","msg":{},"records":[]}'
    gate = guard()
    exchange = Exchange(
        [
            {"type": "http.request", "body": body[:10], "more_body": True},
            {"type": "http.request", "body": body[10:], "more_body": False},
        ]
    )
    await MeshAuthMiddleware(exchange.app, guard=gate)(
        signed_scope(body), exchange.receive, exchange.send
    )
    assert exchange.status() == 200
    assert exchange.reached_app == [body]
    assert gate.audit.counts() == {}


def test_the_gauge_sheds_offers_then_gossip_as_the_loop_falls_behind_never_committed_work() -> None:
    gauge = LoadGauge(offer_lag_ms=1000, gossip_lag_ms=3000)
    gauge.observe_lag(50, now=100.0)
    assert [gauge.admit(kind, 100.0) for kind in (OFFERS, GOSSIP, COMMITTED)] == [0, 0, 0]
    gauge.observe_lag(2000, now=100.0)
    assert gauge.admit(OFFERS, 100.0) == 2  # seconds to wait: about the lag
    assert gauge.admit(GOSSIP, 100.0) == 0
    gauge.observe_lag(8000, now=100.0)
    assert gauge.admit(GOSSIP, 100.0) == 8
    assert gauge.admit(COMMITTED, 100.0) == 0
    assert gauge.shed == {OFFERS: 1, GOSSIP: 1}
    # The reading halves every second once the loop keeps up again.
    assert gauge.lag_ms(103.0) == pytest.approx(1000)
    assert gauge.admit(OFFERS, 104.0) == 0
    assert gauge.snapshot(104.0)["worst_loop_lag_ms"] == 8000


def test_beyond_the_bound_on_requests_in_progress_even_committed_work_waits() -> None:
    gauge = LoadGauge(max_in_flight=2)
    assert gauge.admit(COMMITTED, 0.0) == 0
    assert gauge.admit(GOSSIP, 0.0) == 0
    assert gauge.admit(COMMITTED, 0.0) == 1
    gauge.done()
    assert gauge.admit(COMMITTED, 0.0) == 0
    assert gauge.in_flight == 2


async def test_an_overloaded_node_answers_an_offer_503_with_retry_after_before_reading_it() -> None:
    gate = guard()
    gate.load.observe_lag(5000, gate.clock.monotonic())
    reads = Exchange([{"type": "http.request", "body": b"{}", "more_body": False}])
    scope = dict(signed_scope(b"{}"), path="/mesh/tasks/offer")
    await MeshAuthMiddleware(reads.app, guard=gate)(scope, reads.receive, reads.send)
    assert reads.status() == 503
    assert reads.error_code() == "overloaded"
    headers = dict(reads.sent[0]["headers"])
    assert headers[b"retry-after"] == b"5"
    assert len(reads.messages) == 1  # the body was never read, nor its signature checked
    assert gate.audit.counts() == {}
    assert gate.load.in_flight == 0


async def test_an_overloaded_node_still_takes_a_claim() -> None:
    gate = guard()
    gate.load.observe_lag(60_000, gate.clock.monotonic())
    body = b'{"attempt":1}'
    exchange = Exchange([{"type": "http.request", "body": body, "more_body": False}])
    scope = signed_scope(body, path="/mesh/tasks/claim")
    await MeshAuthMiddleware(exchange.app, guard=gate)(scope, exchange.receive, exchange.send)
    assert exchange.status() == 200
    assert exchange.reached_app == [body]
    assert gate.load.in_flight == 0


async def test_an_outgoing_request_is_abandoned_inside_the_skew_window() -> None:
    client = MeshClient(SENDER, SystemClock(), total_s=0.05)

    async def never(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    await client.aclose()
    client._http = httpx.AsyncClient(transport=httpx.MockTransport(never))
    try:
        request = await client.prepare("http://peer", "POST", PATH, b"{}", RECEIVER.node_id)
        with pytest.raises(httpx.TimeoutException):
            await client.send(request)
        with pytest.raises(httpx.TimeoutException):
            async with client.stream(request):
                raise AssertionError("no headers ever came")
    finally:
        await client.aclose()


class SteppedClock:
    def __init__(self) -> None:
        self.mono = 10.0

    def now_ms(self) -> int:
        return 1_800_000_000_000 + int(self.mono * 1000)

    def monotonic(self) -> float:
        return self.mono


async def test_time_this_nodes_loop_was_stalled_does_not_count_against_its_peers() -> None:
    clock = SteppedClock()

    async def own_advert() -> Advert:
        return advert()

    node = MeshNode(identity=SENDER, config=Config(), clock=clock,
                    guard=MeshGuard(SENDER.node_id, MeshConfig(), clock), url="http://x:1",
                    addrs=[], api_port=2, transport=None, advert_source=own_advert)  # type: ignore[arg-type]  # fmt: skip
    assert node._mono_ms() == 10_000
    clock.mono = 12.0
    node._stalled_ms = 1_500  # the loop could not run for 1.5 s of those 2
    assert node._mono_ms() == 10_500
    node._stalled_ms = 2_500  # counted late: the membership clock never runs backwards
    assert node._mono_ms() == 10_500
    clock.mono = 13.0
    assert node._mono_ms() == 10_500
    clock.mono = 14.0
    assert node._mono_ms() == 11_500
