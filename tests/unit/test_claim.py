"""Claiming a fresh node through ``/setup``, in process: the real client app over a real
database, with the setup files the appliance's ``edgecoder setup-code`` writes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edgecoder.access import AUTH_FAILURE_BURST
from edgecoder.claim import FAILURE_BURST
from edgecoder.security.setup_codes import make_verifier
from edgecoder.storage import setup_state
from tests.inprocess import InProcessNode

pytestmark = pytest.mark.anyio

CODE = "7KQ2-M9XD-4HR0"


@pytest.fixture
async def fresh(node: InProcessNode) -> InProcessNode:
    """The node as a freshly flashed box: a setup code open and no admin key anybody knows."""
    await node.services.access.revoke_key("tests")
    setup_state.write_verifier(node.services.config.node.data_dir, make_verifier(CODE))
    return node


def data_dir(node: InProcessNode) -> Path:
    return node.services.config.node.data_dir


async def test_the_code_buys_one_admin_key_and_then_setup_is_gone(fresh: InProcessNode) -> None:
    async with fresh.client(key=None, address="10.1.1.1") as client:
        state = await client.get("/setup")
        assert state.status_code == 200
        assert state.json() == {"setup": "open", "node_id": fresh.services.node_id}
        answer = await client.post("/setup", json={"code": CODE, "name": "alice"})
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert (body["name"], body["admin"], body["node_id"]) == (
            "alice", True, fresh.services.node_id)  # fmt: skip
        assert answer.headers["Cache-Control"] == "no-store"
        # The key is an admin key of this node.
        owner = {"Authorization": f"Bearer {body['key']}"}
        status = await client.get("/admin/status", headers=owner)
        assert status.status_code == 200
        # Setup is gone: the same code, or any, meets a path that does not exist.
        again = await client.post("/setup", json={"code": CODE})
        assert again.status_code == 404
        assert again.json()["error"]["code"] == "not_found"
        assert (await client.get("/setup")).status_code == 404
    record = setup_state.read_claim(data_dir(fresh))
    assert record is not None
    assert (record.name, record.address) == ("alice", "10.1.1.1")
    assert not (data_dir(fresh) / setup_state.VERIFIER_FILE).exists()


@pytest.mark.parametrize("typed", ["7kq2m9xd4hr0", " 7KQ2 M9XD 4HRO ", "7kq2-m9xd-4hro"])
async def test_the_code_is_read_as_a_person_types_it(fresh: InProcessNode, typed: str) -> None:
    async with fresh.client(key=None) as client:
        answer = await client.post("/setup", json={"code": typed})
    assert answer.status_code == 201, answer.text
    assert answer.json()["name"] == "admin"


async def test_a_wrong_code_is_refused_and_setup_stays_open(fresh: InProcessNode) -> None:
    async with fresh.client(key=None) as client:
        for wrong in ("7KQ2-M9XD-4HR1", "not a code", ""):
            answer = await client.post("/setup", json={"code": wrong})
            assert answer.status_code == 403, (wrong, answer.text)
            assert answer.json()["error"]["code"] == "invalid_setup_code"
        assert (await client.get("/setup")).status_code == 200
        assert (await client.post("/setup", json={"code": CODE})).status_code == 201


@pytest.mark.parametrize(
    ("body", "param"),
    [({}, "code"), ({"code": 12}, "code"), ({"code": CODE, "name": "no spaces"}, "name")],
)
async def test_a_malformed_claim_is_a_400_that_spends_nothing(
    fresh: InProcessNode, body: dict[str, object], param: str
) -> None:
    async with fresh.client(key=None) as client:
        answer = await client.post("/setup", json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == param
        assert (await client.get("/setup")).status_code == 200


async def test_guessing_is_limited_per_address_then_for_everybody(fresh: InProcessNode) -> None:
    async def wrong_from(address: str) -> int:
        async with fresh.client(key=None, address=address) as client:
            return (await client.post("/setup", json={"code": "0000-0000-0000"})).status_code

    statuses = [await wrong_from("10.2.0.1") for _ in range(AUTH_FAILURE_BURST + 1)]
    assert statuses == [403] * AUTH_FAILURE_BURST + [429]
    # Other addresses guess on until the node-wide budget is spent...
    others = [await wrong_from(f"10.2.1.{i}") for i in range(FAILURE_BURST - AUTH_FAILURE_BURST)]
    assert others == [403] * (FAILURE_BURST - AUTH_FAILURE_BURST)
    # ...and then nobody gets an answer about a code, not even the right one.
    async with fresh.client(key=None, address="10.2.9.9") as client:
        limited = await client.post("/setup", json={"code": CODE})
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert setup_state.read_claim(data_dir(fresh)) is None


async def test_two_right_claims_at_once_give_one_key(fresh: InProcessNode) -> None:
    async def claim(name: str) -> int:
        async with fresh.client(key=None) as client:
            return (await client.post("/setup", json={"code": CODE, "name": name})).status_code

    statuses = await asyncio.gather(claim("first"), claim("second"))
    assert sorted(statuses) == [201, 404]
    admins = [k.name for k in await fresh.services.access.list_keys() if k.admin and k.active]
    assert len(admins) == 1


async def test_a_node_with_an_admin_key_has_nothing_to_claim(node: InProcessNode) -> None:
    setup_state.write_verifier(data_dir(node), make_verifier(CODE))
    async with node.client(key=None) as client:
        assert (await client.post("/setup", json={"code": CODE})).status_code == 404
    record = setup_state.read_claim(data_dir(node))
    assert record is not None
    assert (record.name, record.address) == ("tests", "local")


async def test_a_node_without_a_setup_code_has_no_setup(fresh: InProcessNode) -> None:
    setup_state.remove_verifier(data_dir(fresh))
    async with fresh.client(key=None) as client:
        assert (await client.get("/setup")).status_code == 404
        assert (await client.post("/setup", json={"code": CODE})).status_code == 404


async def test_a_corrupt_verifier_is_a_storage_error_not_a_crash(fresh: InProcessNode) -> None:
    (data_dir(fresh) / setup_state.VERIFIER_FILE).write_text("{not json")
    async with fresh.client(key=None) as client:
        answer = await client.post("/setup", json={"code": CODE})
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "storage_unavailable"


async def test_neither_code_nor_key_reaches_the_log(
    fresh: InProcessNode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    async with fresh.client(key=None) as client:
        await client.post("/setup", json={"code": "0000-0000-0001"})
        key = (await client.post("/setup", json={"code": CODE})).json()["key"]
    text = caplog.text
    assert "claimed" in text
    for secret in (CODE, CODE.replace("-", ""), "000000000001", key):
        assert secret not in text
