"""``edgecoder credits``: this node's credits and the verification of its chains, read from
the database when no node answers (docs/cli.md)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from edgecoder.cli.main import main
from edgecoder.clock import SystemClock
from edgecoder.events import EventHub
from edgecoder.ledger.book import Ledger, Posting
from edgecoder.ledger.economy import PINNED, VouchBook
from edgecoder.ledger.entries import TREASURY
from edgecoder.ledger.vouches import make_vouch
from edgecoder.security.identity import NodeIdentity
from edgecoder.storage import ledger_rows, node_meta
from edgecoder.storage.database import Database
from edgecoder.storage.keystore import load_or_create_identity
from tests.integration.agent_process import free_port

WORKER = NodeIdentity(bytes(range(1, 33))).node_id


async def _node(data_dir: Path) -> str:
    """A stopped node's data dir: a key, a pinned economy, an allowance, a hold and a spend."""
    identity, _ = await asyncio.to_thread(load_or_create_identity, data_dir, None)
    key = NodeIdentity.generate()
    vouch = make_vouch(key, network="default", network_key=key.public_key.hex(),
                       node=identity.node_id, amount=5000, issued_ms=1)  # fmt: skip
    database = await Database.open(data_dir)
    try:

        def pin(conn: sqlite3.Connection) -> None:
            node_meta.write(conn, PINNED, key.public_key.hex())
            ledger_rows.store_vouch(conn, vouch.hash, vouch.node, vouch.voucher,
                                    vouch.as_json(), 1)  # fmt: skip

        await database.run(pin)
        book = VouchBook("default")
        book.network_key = key.public_key.hex()
        book.add(vouch)
        ledger = Ledger(identity, database, SystemClock(), EventHub(), vouches=book.lookup)
        await ledger.open()
        await ledger.append(Posting("allowance", 5000, TREASURY, vouch.hash))
        ledger.reserve("t1", 700)
        await ledger.hold("t1")  # left open, as by a crash
        ledger.reserve("t2", 300)
        await ledger.hold("t2")
        async with ledger.payer(WORKER):
            await ledger.pay("t2", WORKER, 250, "cd" * 32)
    finally:
        await database.close()
    return identity.node_id


@pytest.fixture
def stopped(tmp_path: Path, isolated_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    # Nothing listens on the port the configuration names: no node answers.
    monkeypatch.setenv("EDGECODER_API_PORT", str(free_port()))
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    asyncio.run(_node(data_dir))
    return data_dir


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_credits_reads_the_database_when_no_node_runs(
    stopped: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "credits", "--data-dir", str(stopped), "--json")
    assert code == 0
    document = json.loads(out)
    assert (document["balance"], document["held"], document["available"]) == (4750, 700, 4050)
    assert (document["allowance"], document["verified"], document["running"]) == (
        5000, True, False)  # fmt: skip
    assert [e["body"]["kind"] for e in document["entries"]] == [
        "spend", "release", "hold", "hold", "allowance"]  # fmt: skip
    # The same, for people; an admin key and nothing answering: the database too.
    code, out, _ = _run(capsys, "credits", "--data-dir", str(stopped), "--limit", "2",
                        "--api-key", "ec_" + "x" * 43)  # fmt: skip
    assert code == 0
    assert "read from the database" in out
    assert "4.750 credits" in out
    assert "spend" in out
    assert "-0.250" in out
    assert "allowance" not in out.split("recent entries")[1]  # only the newest two


def test_credits_verify_finds_an_altered_entry_and_exits_1(
    stopped: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "credits", "verify", "--data-dir", str(stopped), "--json")
    assert code == 0
    document = json.loads(out)
    assert document["verified"] is True
    [chain] = document["chains"]
    assert (chain["entries"], chain["signatures"], chain["balance"]) == (5, True, 4750)
    # Someone edits the database: the spend's amount, after it was signed.
    with sqlite3.connect(stopped / "edgecoder.db") as conn:
        conn.execute("UPDATE ledger_entries SET amount = 1, total = 1 WHERE kind = 'spend'")
    conn.close()
    code, out, err = _run(capsys, "credits", "--json", "verify", "--data-dir", str(stopped))
    assert code == 1
    [chain] = json.loads(out)["chains"]
    assert (chain["verified"], chain["code"], chain["at_seq"]) == (False, "bad_chain", 5)
    assert err == "edgecoder: error: 1 of 1 chains do not verify\n"
    code, out, _ = _run(capsys, "credits", "verify", "--data-dir", str(stopped))
    assert code == 1
    assert "FAILS at #5" in out


def test_what_needs_a_running_node_says_so(
    stopped: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = _run(capsys, "credits", "vouch", WORKER, "--api-key", "ec_" + "x" * 43)
    assert code == 3
    assert "no EdgeCoder node is running" in err
    code, _, err = _run(capsys, "credits", "--url", url)
    assert code == 2
    assert "an admin API key is needed" in err
    code, _, err = _run(capsys, "credits", "--data-dir", str(tmp_path / "nothing"))
    assert code == 1
    assert "no node key" in err


def test_keys_budget_caps_a_key_and_none_lifts_it(
    stopped: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ("--data-dir", str(stopped))
    assert _run(capsys, "keys", "create", "alice", *data)[0] == 0
    code, out, _ = _run(capsys, "keys", "budget", "alice", "2500", *data)
    assert (code, out) == (0, "API key 'alice': budget 2.500 credits (what it spent so far "
                              "still counts)\n")  # fmt: skip
    code, out, _ = _run(capsys, "keys", "list", "--json", *data)
    [key] = json.loads(out)
    assert (key["budget_mc"], key["spent_mc"]) == (2500, 0)
    assert "2.500" in _run(capsys, "keys", "list", *data)[1]
    assert _run(capsys, "keys", "budget", "alice", "none", *data)[0] == 0
    assert json.loads(_run(capsys, "keys", "list", "--json", *data)[1])[0]["budget_mc"] is None
    code, _, err = _run(capsys, "keys", "budget", "bob", "1", *data)
    assert (code, err) == (1, "edgecoder: error: no API key named 'bob'\n")
    with pytest.raises(SystemExit) as usage:
        main(["keys", "budget", "alice", "-5", *data])
    assert usage.value.code == 2
