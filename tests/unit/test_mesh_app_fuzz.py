"""Hypothesis against the whole mesh app: envelopes and bodies, signed or not, on every route.

Each example is one HTTP request through the mesh listener's real app (request guard,
signature check, routes) in this process: arbitrary paths and methods, envelopes that are
valid, tampered, missing or garbage, and bodies that are canonical documents of any shape
or arbitrary bytes. Every answer must be a documented status with a body in the mesh
dialect, ``{"error": {"code", "message"}}``; nothing may answer 500.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecoder.config import ApiConfig, Config, MeshConfig, NodeConfig
from edgecoder.security.identity import NodeIdentity
from edgecoder.security.mesh_guard import HEADERS
from edgecoder.speedups import envelope
from edgecoder.wire import canonical
from tests.inprocess import InProcessNode

FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
PATHS = ["/mesh/ping", "/mesh/records", "/mesh/gossip", "/mesh/tasks/offer",
         "/mesh/tasks/claim", "/mesh/tasks/close", "/mesh/tasks/cancel", "/mesh/tasks/run",
         "/mesh/tasks/receipt", "/healthz", "/", "/mesh", "/mesh/tasks/x"]  # fmt: skip
DOCUMENTED = {200, 400, 401, 404, 405, 413, 429, 503}
"""503 only as ``overloaded``: the node sheds load (with ``Retry-After``)."""

documents = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53 - 1), 2**53 - 1) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=24,
)  # fmt: skip
bodies = documents.map(canonical.encode) | st.binary(max_size=300)
_PATH_CHARS = st.characters(
    min_codepoint=33, max_codepoint=0x2FF, exclude_characters="?#%/\\", exclude_categories=("Cc",)
)
odd_paths = st.text(_PATH_CHARS, min_size=1, max_size=20).map(lambda t: "/" + t)
tamper = st.sampled_from(["none"] * 5 + ["body", "drop", "garbage", "recipient", "unsigned"])


def _config(data_dir: Path) -> Config:
    fast = {"peer_rate_per_s": 100_000, "address_rate_per_s": 100_000}
    return Config(
        node=NodeConfig(data_dir=data_dir),
        mesh=MeshConfig(**fast),
        api=ApiConfig(rate_limit_per_min=600_000, rate_limit_burst=100_000),
    )


def _headers(
    peer: NodeIdentity, node: InProcessNode, method: str, path: str, body: bytes, how: str,
    garbage: str, header: str,
) -> dict[str, str]:  # fmt: skip
    if how == "unsigned":
        return {}
    recipient = "a" * 32 if how == "recipient" else node.services.node_id
    headers = envelope.sign_request(
        peer.secret_key, peer.public_key, method, path, recipient, body,
        node.services.clock.now_ms(),
    )  # fmt: skip
    if how == "drop":
        headers.pop(header, None)
    elif how == "garbage":
        headers[header] = garbage
    return headers


async def _one(
    node: InProcessNode, client: httpx.AsyncClient, peer: NodeIdentity, method: str, path: str,
    body: bytes, how: str, garbage: str, header: str,
) -> int:  # fmt: skip
    headers = _headers(peer, node, method, path, body, how, garbage, header)
    sent = body + b"!" if how == "body" else body
    response = await client.request(method, path, content=sent, headers=headers)
    where = f"{method} {path} ({how}) -> {response.status_code}: {response.text[:300]}"
    assert response.status_code in DOCUMENTED, where
    assert response.headers["content-type"].startswith("application/json"), where
    answer = json.loads(response.content)
    if response.status_code >= 400:
        assert isinstance(answer["error"]["code"], str), where
        assert isinstance(answer["error"]["message"], str), where
    if response.status_code == 503:
        assert answer["error"]["code"] == "overloaded", where
    if how in {"body", "drop", "garbage", "recipient", "unsigned"} and path != "/healthz":
        assert response.status_code in {401, 404, 405, 413, 429}, where
    return response.status_code


def test_no_request_on_the_mesh_listener_gets_a_500(tmp_path: Path) -> None:
    with asyncio.Runner() as runner:
        node = runner.run(InProcessNode.open(tmp_path, _config(tmp_path)))
        client = node.mesh_client()
        peer = NodeIdentity.generate()
        seen: dict[int, int] = {}

        @FUZZ
        @given(
            method=st.sampled_from(["POST"] * 6 + ["GET", "PUT"]),
            path=st.sampled_from(PATHS)
            | st.sampled_from(PATHS)
            | st.sampled_from(PATHS)
            | odd_paths,
            body=bodies,
            how=tamper,
            garbage=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
            header=st.sampled_from(HEADERS),
        )
        def check(method: str, path: str, body: bytes, how: str, garbage: str,
                  header: str) -> None:  # fmt: skip
            status = runner.run(_one(node, client, peer, method, path, body, how, garbage, header))
            seen[status] = seen.get(status, 0) + 1

        try:
            check()
        finally:
            runner.run(client.aclose())
            runner.run(node.close())
    print(json.dumps({"mesh_fuzz_answers": seen}))
    assert sum(seen.values()) >= 1500
    assert {200, 400, 401, 404} <= set(seen), "the examples reach routes, not only the guard"
