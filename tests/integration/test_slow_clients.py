"""Slow and greedy clients against a real agent: one address holding idle connections on the
client port, a slowloris and an endless header on the mesh port; /healthz and signed mesh
traffic keep answering throughout."""

from __future__ import annotations

import json
import selectors
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edgecoder.security.identity import NodeIdentity
from edgecoder.speedups import envelope
from tests.integration.agent_process import AgentProcess

pytestmark = pytest.mark.integration

HANG_S = 60.0
"""A bound on hangs only: every wait ends as soon as what it waits for happens."""

CONFIG = """
[api]
max_connections_per_address = 8
header_timeout_s = 3600
[mesh]
header_timeout_s = 1
max_header_bytes = 2048
"""


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[AgentProcess]:
    (tmp_path / "edgecoder.toml").write_text(CONFIG)
    process = AgentProcess(tmp_path).start()
    yield process
    process.close()


def signed_ping(agent: AgentProcess) -> int:
    """Status of a ``POST /mesh/ping`` signed by a node the agent has never met."""
    _, health = agent.get(f"{agent.mesh_url}/healthz")
    stranger = NodeIdentity.generate()
    headers = envelope.sign_request(
        stranger.secret_key, stranger.public_key, "POST", "/mesh/ping", health["node_id"], b"",
        int(time.time() * 1000),
    )  # fmt: skip
    return httpx.post(f"{agent.mesh_url}/mesh/ping", headers=headers, timeout=HANG_S).status_code


def answered(sockets: list[socket.socket], count: int) -> dict[socket.socket, bytes]:
    """Wait until ``count`` of ``sockets`` have been answered and closed; their answers."""
    answers: dict[socket.socket, bytes] = {sock: b"" for sock in sockets}
    done: dict[socket.socket, bytes] = {}
    deadline = time.monotonic() + HANG_S
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        while len(done) < count:
            assert time.monotonic() < deadline, f"only {len(done)} of {count} answered"
            for key, _ in selector.select(timeout=1.0):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                chunk = ready.recv(65536)
                answers[ready] += chunk
                if not chunk:
                    selector.unregister(ready)
                    done[ready] = answers[ready]
    return done


def test_idle_connections_from_one_address_leave_mesh_and_healthz_answering(
    agent: AgentProcess,
) -> None:
    flood = [socket.create_connection((agent.host, agent.api_port), timeout=HANG_S)
             for _ in range(40)]  # fmt: skip
    try:
        refused = answered(flood, 32)
        for answer in refused.values():
            head, _, payload = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 "), answer
            assert b"\r\nretry-after: 1\r\n" in head
            assert json.loads(payload)["error"]["code"] == "too_many_connections"
        # The mesh listener counts its own connections: untouched by the flood.
        status, health = agent.get(f"{agent.mesh_url}/healthz")
        assert status == 200
        assert health["connections"]["api"]["refused"] >= 32
        assert health["connections"]["mesh"]["refused"] == 0
        assert signed_ping(agent) == 200
        # This address can open no more on the client port while it holds eight...
        status, body = agent.get(f"{agent.api_url}/healthz")
        assert (status, body["error"]["code"]) == (503, "too_many_connections")
    finally:
        for sock in flood:
            sock.close()
    # ...and can again once they are gone.
    deadline = time.monotonic() + HANG_S
    while agent.get(f"{agent.api_url}/healthz")[0] != 200:
        assert time.monotonic() < deadline, "the client port still refuses after the flood"
        time.sleep(0.1)
    code, log = agent.stop(signal.SIGTERM)
    assert code == 0, log
    reports = [line for line in log.splitlines() if "api listener: refused" in line]
    assert 1 <= len(reports) < 33, reports  # rate-limited, not one line per connection


def test_slowloris_and_endless_headers_on_the_mesh_port_are_cut_off(agent: AgentProcess) -> None:
    slow = socket.create_connection((agent.host, agent.mesh_port), timeout=HANG_S)
    slow.sendall(b"POST /mesh/ping HTTP/1.1\r\nhost: node\r\nx-edgecoder-sender: ")
    endless = socket.create_connection((agent.host, agent.mesh_port), timeout=HANG_S)
    endless.sendall(b"POST /mesh/ping HTTP/1.1\r\nhost: node\r\nx-padding: " + b"a" * 4096)
    try:
        answers = answered([slow, endless], 2)
        assert answers[slow] == b""  # closed without a word once its time was up
        head, _, body = answers[endless].partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 431 "), answers[endless]
        assert json.loads(body)["error"]["code"] == "headers_too_large"
    finally:
        slow.close()
        endless.close()
    status, health = agent.get(f"{agent.mesh_url}/healthz")
    assert status == 200
    assert health["connections"]["mesh"]["timed_out"] >= 1
    assert health["connections"]["mesh"]["oversized"] >= 1
    assert signed_ping(agent) == 200
