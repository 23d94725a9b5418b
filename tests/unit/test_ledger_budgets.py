"""API keys are credit accounts (docs/ledger.md §4): each remote task's price is charged to
the key that asked, durably with the payment, and a request beyond the key's budget is
refused before anything runs, like an unaffordable one; local work is free.

On the in-memory mesh (real origins, workers and ledgers), and through the real client
app of an in-process node for the statuses each dialect answers.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from edgecoder.access import AccessControl
from edgecoder.clock import SystemClock
from edgecoder.config import Config, TasksConfig
from edgecoder.config.model import ApiConfig, NodeConfig
from edgecoder.errors import BadRequestError, InsufficientCreditsError
from edgecoder.ledger.accounts import KeyAccounts
from edgecoder.ledger.book import Posting
from edgecoder.ledger.entries import TREASURY
from edgecoder.ledger.pricing import format_mc, most_mc, price_mc
from edgecoder.ledger.vouches import make_vouch
from edgecoder.security.identity import NodeIdentity
from edgecoder.storage import api_keys
from edgecoder.storage.database import Database
from edgecoder.tasks.transport import MessageKind
from tests.adverts import advert, model
from tests.inmemory import ADVERT, Mesh, Script, remote_task, run_one
from tests.inprocess import MODEL, InProcessNode

pytestmark = pytest.mark.anyio

HELD = ADVERT.models[0]
HOLD = most_mc(3, 8, HELD.size_class, 100, HELD.context_length)
"""What escrow holds for a task of :func:`remote_task` with ``max_tokens=8``."""
PRICE = price_mc(3, 4, HELD.size_class, 100)
"""What such a task costs when the worker says four words."""


async def _keys(database: Database, **budgets: int | None) -> None:
    access = AccessControl(database, SystemClock(), rate_per_min=60, burst=10)
    for name, budget in budgets.items():
        await access.create_key(name, admin=False)
        await access.set_budget(name, budget)


async def _account(database: Database, name: str) -> tuple[int | None, int] | None:
    return await Database.run(database, lambda c: api_keys.budget_of(c, name))


async def _charged(mesh: Mesh, origin: str, name: str, spent: int) -> None:
    async def there() -> bool:
        found = await _account(mesh.databases[origin], name)
        return found is not None and found[1] == spent

    await mesh.until(there, f"{name} charged {spent} mc")


async def test_each_task_is_charged_to_its_key_until_the_budget_refuses_one(
    tmp_path: Path,
) -> None:
    assert PRICE < HOLD
    async with Mesh.open(tmp_path, workers=2, script=Script(reply="a b c d")) as mesh:
        origin_id = next(iter(mesh.origins))
        database = mesh.databases[origin_id]
        ledger = mesh.ledgers[origin_id]
        ledger.accounts = KeyAccounts(database)
        await _keys(database, alice=HOLD + PRICE, bob=None)
        for done in (1, 2):  # the second fits exactly: HOLD left after the first
            task = remote_task(mesh, f"alice {done}", max_tokens=8)
            task.account = "alice"
            assert await run_one(mesh.origin, task) == "a b c d"
            await _charged(mesh, origin_id, "alice", done * PRICE)
        offers = len(mesh.sent_to(MessageKind.OFFER))
        third = remote_task(mesh, "alice 3", max_tokens=8)
        third.account = "alice"
        with pytest.raises(InsufficientCreditsError) as refused:
            await run_one(mesh.origin, third)
        assert str(refused.value) == (
            f"API key 'alice' has {format_mc(HOLD - PRICE)} of its {format_mc(HOLD + PRICE)} "
            f"credit budget left and this task may cost up to {format_mc(HOLD)} credits; "
            "the node's operator can raise it (edgecoder keys budget alice MC)"
        )
        assert len(mesh.sent_to(MessageKind.OFFER)) == offers  # refused before any offer
        assert ledger.held == 0
        assert ledger.accounts.pending("alice") == 0
        # A key without a budget is charged all the same; a task of no key, to nobody.
        for account in ("bob", None):
            task = remote_task(mesh, f"{account}", max_tokens=8)
            task.account = account
            assert await run_one(mesh.origin, task) == "a b c d"
        await _charged(mesh, origin_id, "bob", PRICE)
        paid = lambda: sum(ledger.spent_to(w) for w in mesh.workers)  # noqa: E731
        await mesh.until(lambda: paid() == 4 * PRICE, "every task paid")
        # What was charged is what the chain spent, and it survives a restart (it is in
        # the database, written with the spend).
        assert await _account(database, "alice") == (HOLD + PRICE, 2 * PRICE)


async def test_a_key_counts_its_tasks_in_flight_and_gets_back_what_a_failure_held(
    tmp_path: Path,
) -> None:
    gate = asyncio.Event()
    script = Script(reply="a b c d", hold=gate)
    async with Mesh.open(tmp_path, workers=1, script=script, max_attempts=1) as mesh:
        origin_id = next(iter(mesh.origins))
        database = mesh.databases[origin_id]
        ledger = mesh.ledgers[origin_id]
        accounts = ledger.accounts = KeyAccounts(database)
        await _keys(database, carol=2 * HOLD - 1)
        first = remote_task(mesh, "first", max_tokens=8)
        first.account = "carol"
        running = asyncio.ensure_future(run_one(mesh.origin, first))
        await mesh.until(lambda: accounts.pending("carol") == HOLD, "the first reserved")
        second = remote_task(mesh, "second", max_tokens=8)
        second.account = "carol"
        left = re.escape(f"API key 'carol' has {format_mc(HOLD - 1)} of its")
        with pytest.raises(InsufficientCreditsError, match=left):
            await run_one(mesh.origin, second)  # the first's largest price still counts
        [worker] = mesh.workers
        mesh.switches[worker].die_after = 1  # the first fails: nothing is charged
        gate.set()
        with pytest.raises(Exception, match="1 attempts"):
            await running
        await mesh.until(lambda: accounts.pending("carol") == 0, "the failure's release")
        assert await _account(database, "carol") == (2 * HOLD - 1, 0)


async def test_setting_a_budget_names_a_key_and_takes_whole_millicredits(tmp_path: Path) -> None:
    database = await Database.open(tmp_path)
    try:
        access = AccessControl(database, SystemClock(), rate_per_min=60, burst=10)
        await access.create_key("dave", admin=False)
        with pytest.raises(BadRequestError, match="no API key named 'erin'"):
            await access.set_budget("erin", 10)
        with pytest.raises(BadRequestError, match="from 0"):
            await access.set_budget("dave", -1)
        await access.set_budget("dave", 0)
        [record] = await access.list_keys()
        assert (record.budget_mc, record.spent_mc) == (0, 0)
        await access.set_budget("dave", None)
        [record] = await access.list_keys()
        assert record.budget_mc is None
    finally:
        await database.close()


# -- through the client app --------------------------------------------------------------


async def _requester(tmp_path: Path, credits: int) -> InProcessNode:
    """A requester-only node (it runs nothing itself) with ``credits`` and one peer that
    serves the model: every request is a remote task."""
    config = Config(node=NodeConfig(data_dir=tmp_path),
                    api=ApiConfig(rate_limit_per_min=60_000, rate_limit_burst=10_000),
                    tasks=TasksConfig(worker_slots=0))  # fmt: skip
    node = await InProcessNode.open(tmp_path, config)
    economy = node.services.economy
    key = NodeIdentity.generate()
    economy.book.network_key = key.public_key.hex()
    vouch = make_vouch(key, network="default", network_key=key.public_key.hex(),
                       node=node.services.node_id, amount=credits, issued_ms=1)  # fmt: skip
    economy.book.add(vouch)
    await economy.ledger.append(Posting("allowance", credits, TREASURY, vouch.hash))
    await node.services.mesh.publish_advert()
    await node.join_peer(NodeIdentity.generate(), advert=advert(model(MODEL)))
    return node


async def test_a_key_over_its_budget_is_refused_402_in_every_dialect(tmp_path: Path) -> None:
    node = await _requester(tmp_path, 100_000)
    try:
        access = node.services.access
        key = await access.create_key("frank", admin=False)
        await access.set_budget("frank", 0)
        chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 8}  # fmt: skip
        async with node.client(key=key) as client:
            openai = await client.post("/v1/chat/completions", json=chat)
            ollama = await client.post("/api/chat", json={**chat, "stream": False})
            anthropic = await client.post("/v1/messages", json=chat)
            completion = await client.post("/v1/completions",
                                           json={"model": MODEL, "prompt": "x"})  # fmt: skip
        assert openai.status_code == 402
        error = openai.json()["error"]
        assert (error["code"], error["type"]) == ("insufficient_credits", "insufficient_quota")
        assert error["message"].startswith("API key 'frank' has 0.000 of its 0.000 credit")
        assert ollama.status_code == 402
        assert ollama.json()["error"].startswith("API key 'frank'")
        assert anthropic.status_code == 402
        assert "API key 'frank'" in anthropic.json()["error"]["message"]
        assert completion.status_code == 402
        assert await _account(node.services.database, "frank") == (0, 0)
        assert node.services.economy.ledger.held == 0  # nothing stays reserved
    finally:
        await node.close()


async def test_local_work_is_free_whatever_the_budget(node: InProcessNode) -> None:
    access = node.services.access
    key = await access.create_key("grace", admin=False)
    await access.set_budget("grace", 0)
    async with node.client(key=key) as client:
        answer = await client.post("/v1/chat/completions", json={
            "model": MODEL, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert answer.status_code == 200
    assert await _account(node.services.database, "grace") == (0, 0)


async def test_the_operator_sets_a_budget_over_http(node: InProcessNode) -> None:
    await node.services.access.create_key("heidi", admin=False)
    async with node.client() as client:
        set_ = await client.put("/admin/keys/heidi/budget", json={"budget_mc": 5000})
        listed = (await client.get("/admin/keys")).json()["keys"]
        unset = await client.put("/admin/keys/heidi/budget", json={"budget_mc": None})
        missing = await client.put("/admin/keys/heidi/budget", json={})
        negative = await client.put("/admin/keys/heidi/budget", json={"budget_mc": -5})
        nobody = await client.put("/admin/keys/ivan/budget", json={"budget_mc": 5})
    assert set_.json() == {"name": "heidi", "budget_mc": 5000, "spent_mc": 0}
    assert [(k["budget_mc"], k["spent_mc"]) for k in listed if k["name"] == "heidi"] == [
        (5000, 0)]  # fmt: skip
    assert unset.json()["budget_mc"] is None
    assert [r.status_code for r in (missing, negative, nobody)] == [400, 400, 400]
    assert nobody.json()["error"]["param"] == "name"
