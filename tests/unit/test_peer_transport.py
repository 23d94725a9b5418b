"""Refusals across the mesh transport: the HTTP adapter reads a peer's answer back as a
typed :class:`PeerTransportError` (code, reachable, Retry-After), and the core acts on
codes alone."""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from edgecoder.adapters.transports import refusals
from edgecoder.adapters.transports.gossip_transport import HttpGossipTransport
from edgecoder.adapters.transports.mesh_app import build_mesh_app
from edgecoder.adapters.transports.mesh_client import MeshClient
from edgecoder.adapters.transports.statuses import REFUSAL_STATUS, auth_status, refusal_status
from edgecoder.adapters.transports.task_routes import task_routes
from edgecoder.adapters.transports.task_transport import PATHS, HttpTaskTransport
from edgecoder.clock import SystemClock
from edgecoder.config import Config, MeshConfig
from edgecoder.errors import PeerTransportError
from edgecoder.mesh.advert_types import Advert
from edgecoder.mesh.membership import Send
from edgecoder.mesh.node import MeshNode
from edgecoder.security.identity import NodeIdentity
from edgecoder.security.mesh_guard import MeshGuard
from edgecoder.tasks.transport import UNAVAILABLE, MessageKind
from tests.adverts import advert

pytestmark = pytest.mark.anyio

SENDER = NodeIdentity(bytes(range(32)))
PEER = NodeIdentity(bytes(range(1, 33)))
Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler) -> MeshClient:
    client = MeshClient(SENDER, SystemClock())
    client._http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return client


def _answer(status: int, code: str | None = None, **headers: str) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if code is None:
            return httpx.Response(status, text="<html>no</html>", headers=headers)
        body = {"error": {"code": code, "message": f"said {code}"}}
        return httpx.Response(status, json=body, headers=headers)

    return handler


async def _gossip(handler: Handler) -> PeerTransportError:
    client = _client(handler)
    try:
        with pytest.raises(PeerTransportError) as caught:
            await HttpGossipTransport(client).send("http://peer:1", PEER.node_id, b"{}")
    finally:
        await client.aclose()
    return caught.value


async def test_a_refusal_carries_the_peers_code_and_message_not_its_status() -> None:
    refused = await _gossip(_answer(409, "duplicate_node_id"))
    assert (refused.code, str(refused), refused.reachable) == (
        "duplicate_node_id",
        "said duplicate_node_id",
        True,
    )
    assert refused.retry_after_s is None


async def test_retry_after_is_read_from_a_shed_answer() -> None:
    refused = await _gossip(_answer(503, "overloaded", **{"Retry-After": "5"}))
    assert (refused.code, refused.retry_after_s) == ("overloaded", 5.0)
    for value in ("Wed, 21 Oct 2015 07:28:00 GMT", "-1", "soon"):
        refused = await _gossip(_answer(503, "overloaded", **{"Retry-After": value}))
        assert refused.retry_after_s is None, value


async def test_a_request_refused_for_clock_skew_tells_the_operator_to_check_the_clock(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refusals, "_clock_warned_at", None)
    with caplog.at_level(logging.WARNING, logger=refusals.__name__):
        for _ in range(3):
            refused = await _gossip(_answer(401, "skew"))
            assert refused.code == "skew"
        await _gossip(_answer(401, "replay"))
    # Once a minute at most: a node whose clock is wrong is refused by every peer.
    [warning] = [r.getMessage() for r in caplog.records]
    assert "peer at peer:1" in warning
    assert "check its time synchronisation" in warning


async def test_an_answer_without_a_code_is_named_by_whose_trouble_it_was() -> None:
    assert (await _gossip(_answer(502))).code == "unavailable"
    assert (await _gossip(_answer(404))).code == "http_error"
    assert "unavailable" in UNAVAILABLE


async def test_a_peer_that_cannot_be_reached_is_not_a_refusal() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    refused = await _gossip(down)
    assert (refused.code, refused.reachable) == ("unreachable", False)


async def test_the_task_transport_reads_refusals_the_same_way() -> None:
    addresses = {PEER.node_id: "http://peer:1"}
    client = _client(_answer(409, "not_claimed"))
    try:
        transport = HttpTaskTransport(client, addresses.get)
        with pytest.raises(PeerTransportError) as caught:
            await transport.post(PEER.node_id, MessageKind.CLAIM, {})
        assert (caught.value.code, caught.value.reachable) == ("not_claimed", True)
        with pytest.raises(PeerTransportError) as caught:
            await transport.post(SENDER.node_id, MessageKind.CLAIM, {})
        assert (caught.value.code, caught.value.reachable) == ("unknown_peer", False)
    finally:
        await client.aclose()


def test_each_message_kind_goes_to_the_route_that_serves_it() -> None:
    app = build_mesh_app(SimpleNamespace(mesh_guard=None))  # type: ignore[arg-type]
    served = {getattr(route, "path", "") for route in app.routes}
    assert set(PATHS.values()) <= served
    assert {route.path for route in task_routes(None)} <= set(PATHS.values())  # type: ignore[arg-type]
    assert PATHS[MessageKind.RUN] == "/mesh/tasks/run"
    assert PATHS[MessageKind.ENTRIES] == "/mesh/ledger/entries"


async def test_a_message_is_signed_for_its_kinds_route() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={"result": "considering"})

    client = _client(handler)
    try:
        transport = HttpTaskTransport(client, {PEER.node_id: "http://peer:1"}.get)
        answer = await transport.post(PEER.node_id, MessageKind.OFFER, {})
    finally:
        await client.aclose()
    assert (answer, seen) == ({"result": "considering"}, ["/mesh/tasks/offer"])


def test_every_code_answered_with_a_server_error_counts_as_the_peer_unavailable() -> None:
    # The origin retries elsewhere on these codes, as it once did on any status >= 500.
    served = {code for code, status in REFUSAL_STATUS.items() if status >= 500}
    assert served == UNAVAILABLE - {"bad_answer", "unavailable"}
    assert refusal_status("bad_shape") == 400
    assert refusal_status("duplicate_node_id") == 409
    assert auth_status("bad_signature") == 401
    assert auth_status("rate_limited") == 429


class _Refusing:
    def __init__(self, error: PeerTransportError) -> None:
        self.error = error

    async def send(self, address: str, node_id: str | None, body: bytes) -> Any:
        raise self.error


def _node(error: PeerTransportError) -> MeshNode:
    clock = SystemClock()

    async def own_advert() -> Advert:
        return advert()

    return MeshNode(identity=SENDER, config=Config(), clock=clock,
                    guard=MeshGuard(SENDER.node_id, MeshConfig(), clock), url="http://me:1",
                    addrs=[], api_port=2, transport=_Refusing(error),
                    advert_source=own_advert)  # fmt: skip


@pytest.mark.parametrize(
    ("error", "conflicted"),
    [
        (PeerTransportError("duplicate_node_id", "in use at x", reachable=True), True),
        (PeerTransportError("wrong_network", "in network y", reachable=True), False),
        (PeerTransportError("duplicate_node_id", "local trouble", reachable=False), False),
    ],
)
async def test_a_node_stops_gossiping_when_a_peer_refuses_it_as_a_duplicate_id(
    error: PeerTransportError, conflicted: bool
) -> None:
    node = _node(error)
    message = {"t": "ping", "from": SENDER.node_id}
    await node._deliver(Send("http://peer:1", message, PEER.node_id), b"{}", node._mono_ms())
    assert (node.conflict is not None) is conflicted
    if conflicted:
        assert node.conflict is not None
        assert "in use at x" in node.conflict["message"]
