"""Slow and greedy clients against a real embedded listener: header timeout and size, idle
keep-alive, per-address and total connection caps, each listener on its own."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from edgecoder.config.model import ApiConfig, MeshConfig
from edgecoder.daemon.connections import (
    REPORT_INTERVAL_S,
    ConnectionLimits,
    ConnectionTracker,
    address_key,
)
from edgecoder.daemon.listeners import EmbeddedServer, bind_listener

pytestmark = pytest.mark.anyio

HANG_S = 60.0
"""A bound on hangs only: every wait below ends as soon as what it waits for happens."""

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _healthz(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def _echo(request: Request) -> JSONResponse:
    return JSONResponse({"received": len(await request.body())})


APP = Starlette(routes=[Route("/healthz", _healthz), Route("/echo", _echo, methods=["POST"])])


class Listener:
    """One embedded server on a free loopback port."""

    def __init__(self, server: EmbeddedServer, port: int) -> None:
        self.server = server
        self.port = port

    async def connect(self) -> Stream:
        return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), HANG_S)

    async def until(self, condition: Callable[[], bool]) -> None:
        # The tracker's counts publish no event (connection_lost is a plain callback).
        async with asyncio.timeout(HANG_S):
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.01)


@asynccontextmanager
async def listening(section: ApiConfig | MeshConfig, name: str = "api") -> AsyncIterator[Listener]:
    sock = bind_listener(name, "127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = EmbeddedServer(APP, name, 1, section)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(HANG_S):
            await server.serving.wait()
        yield Listener(server, port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, HANG_S)
        sock.close()


async def request(stream: Stream, raw: bytes | None = None) -> tuple[int, dict[str, str], Any]:
    """Send one request (``GET /healthz`` unless ``raw``) and read its whole response."""
    reader, writer = stream
    writer.write(raw or b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
    await writer.drain()
    return await response(reader)


async def response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], Any]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG_S)
    status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = dict(line.lower().split(": ", 1) for line in lines)
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), HANG_S)
    return int(status_line.split()[1]), headers, json.loads(body)


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Whether the server closes the connection (within the hang bound) without a word."""
    try:
        return await asyncio.wait_for(reader.read(), HANG_S) == b""
    except ConnectionResetError:
        return True


def send_at_once(port: int) -> bytes:
    """A blocking client: connect, send a request, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_S) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def close(*streams: Stream) -> None:
    for _, writer in streams:
        writer.close()


async def test_a_connection_that_never_finishes_its_headers_is_closed() -> None:
    async with listening(ApiConfig(header_timeout_s=1)) as api:
        silent = await api.connect()
        slow = await api.connect()
        slow[1].write(b"GET /healthz HTTP/1.1\r\nhost: test\r\nx-one: more")
        assert await closed_by_server(silent[0])
        assert await closed_by_server(slow[0])
        await api.until(lambda: api.server.tracker.open == 0)
        assert api.server.tracker.timed_out == 2
        close(silent, slow)


async def test_the_header_timer_starts_again_after_each_response() -> None:
    async with listening(ApiConfig(header_timeout_s=1, idle_timeout_s=3600)) as api:
        stream = await api.connect()
        # Two pipelined requests are both answered; neither is cut off.
        reader, writer = stream
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: a\r\n\r\n" * 2)
        assert (await response(reader))[0] == 200
        assert (await response(reader))[0] == 200
        # Then a head that never ends: the idle timeout (an hour) is not what closes it.
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        assert await closed_by_server(reader)
        close(stream)


async def test_an_idle_keepalive_connection_is_closed() -> None:
    async with listening(ApiConfig(header_timeout_s=3600, idle_timeout_s=1)) as api:
        stream = await api.connect()
        assert (await request(stream))[0] == 200
        assert await closed_by_server(stream[0])
        close(stream)


async def test_headers_over_the_cap_get_431_then_close() -> None:
    async with listening(ApiConfig(max_header_bytes=1024)) as api:
        at_once = await api.connect()
        big = b"GET /healthz HTTP/1.1\r\nhost: test\r\nx-big: " + b"a" * 2000 + b"\r\n\r\n"
        status, headers, body = await request(at_once, big)
        assert (status, headers["connection"]) == (431, "close")
        assert body["error"]["code"] == "headers_too_large"
        assert await closed_by_server(at_once[0])

        # A header that never ends, sent in pieces: refused once it passes the cap.
        trickle = await api.connect()
        trickle[1].write(b"GET /healthz HTTP/1.1\r\nx-long: ")
        for _ in range(10):
            trickle[1].write(b"b" * 100)
            await trickle[1].drain()
        assert (await response(trickle[0]))[0] == 431
        assert api.server.tracker.oversized == 2

        # Small headers followed by a large body in the same write are fine.
        ok = await api.connect()
        payload = b"x" * 100_000
        post = (b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: "
                + str(len(payload)).encode() + b"\r\n\r\n" + payload)  # fmt: skip
        assert (await request(ok, post))[::2] == (200, {"received": len(payload)})
        # And on keep-alive the next request's headers are measured afresh.
        assert (await request(ok))[0] == 200
        close(at_once, trickle, ok)


async def test_one_address_over_its_cap_gets_503_while_its_first_connections_work() -> None:
    async with listening(ApiConfig(max_connections_per_address=2)) as api:
        first, second = await api.connect(), await api.connect()
        assert (await request(first))[0] == 200
        assert (await request(second))[0] == 200
        extra = await api.connect()
        status, headers, body = await response(extra[0])  # sent before any request
        assert (status, headers["retry-after"], headers["connection"]) == (503, "1", "close")
        assert body["error"]["code"] == "too_many_connections"
        assert "from this address" in body["error"]["message"]
        assert await closed_by_server(extra[0])
        # A client that sends its request at once (from another thread, so it really races
        # the refusal) still reads the answer rather than a reset.
        answer = await asyncio.to_thread(send_at_once, api.port)
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert (await request(first))[0] == 200
        assert api.server.tracker.refused == 2

        close(second)
        await api.until(lambda: api.server.tracker.open == 1)
        again = await api.connect()
        assert (await request(again))[0] == 200
        await api.until(lambda: api.server.tracker.lingering == 0)
        close(first, extra, again)


async def test_the_listener_cap_counts_every_address() -> None:
    limits = MeshConfig(max_connections=2, max_connections_per_address=100)
    async with listening(limits, "mesh") as mesh:
        held = [await mesh.connect() for _ in range(2)]
        for stream in held:
            assert (await request(stream))[0] == 200
        extra = await mesh.connect()
        status, _, body = await response(extra[0])
        assert status == 503
        assert "to this node" in body["error"]["message"]
        close(*held, extra)


async def test_a_flood_on_one_listener_leaves_the_other_answering() -> None:
    async with (
        listening(ApiConfig(max_connections_per_address=3), "api") as api,
        listening(MeshConfig(max_connections_per_address=3), "mesh") as mesh,
    ):
        flood = [await api.connect() for _ in range(20)]
        await api.until(lambda: api.server.tracker.refused == 17)
        assert api.server.tracker.open == 3
        probe = await mesh.connect()
        assert (await request(probe))[0] == 200
        assert mesh.server.tracker.refused == 0

        close(*flood)
        await api.until(lambda: api.server.tracker.open == 0)
        after = await api.connect()
        assert (await request(after))[0] == 200
        close(probe, after)


def test_tracker_counts_per_address_and_in_all() -> None:
    tracker = ConnectionTracker("api", ConnectionLimits(max_connections=3,
                                                        max_connections_per_address=2))  # fmt: skip
    assert [tracker.admit("a"), tracker.admit("a"), tracker.admit("a")] == [None, None, "address"]
    assert tracker.admit("b") is None
    assert tracker.admit("c") == "listener"
    assert (tracker.open, tracker.count("a"), tracker.refused) == (3, 2, 2)
    tracker.release("a")
    assert tracker.admit("c") is None
    for key in ("a", "b", "c"):
        tracker.release(key)
    assert (tracker.open, tracker.count("a")) == (0, 0)


def test_refusals_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    tracker = ConnectionTracker("mesh", ConnectionLimits(max_connections_per_address=1),
                                clock=lambda: now[0])  # fmt: skip
    tracker.admit("10.0.0.9")
    with caplog.at_level(logging.WARNING, logger="edgecoder.daemon.connections"):
        for _ in range(50):
            tracker.admit("10.0.0.9")
        now[0] = REPORT_INTERVAL_S
        tracker.admit("10.0.0.9")
        for _ in range(9):
            tracker.admit("10.0.0.9")
        now[0] = 2 * REPORT_INTERVAL_S
        tracker.release("10.0.0.9")  # the flood is over: what is left is reported
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert lines[0].startswith("mesh listener: refused 1 connection(s)")
    assert lines[1].startswith("mesh listener: refused 50 connection(s)")
    assert "latest from 10.0.0.9 (over 1 per address; 1 open)" in lines[1]
    assert lines[2].startswith("mesh listener: refused 9 connection(s)")


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        (None, "unknown"),
    ],
)
def test_ipv6_hosts_are_counted_per_64(host: str | None, key: str) -> None:
    assert address_key(host) == key
