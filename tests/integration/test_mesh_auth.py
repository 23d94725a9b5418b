"""Attacks on a real agent's mesh listener: each refused with its code, none with a side effect."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgecoder.security.blacklist import blacklist_entry
from edgecoder.security.identity import NodeIdentity
from edgecoder.security.rotation import rotation_record
from edgecoder.speedups import envelope
from edgecoder.wire import canonical
from edgecoder.wire.records import sign_record
from tests.integration.agent_process import AgentProcess, edgecoder

pytestmark = pytest.mark.integration


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[AgentProcess, AgentProcess]]:
    target = AgentProcess(tmp_path / "target")
    caller = AgentProcess(tmp_path / "caller")
    # The caller only needs its key; starting it once creates one.
    caller.start()
    caller.stop()
    target.start()
    yield target, caller
    target.close()


def dry_run(caller: AgentProcess, target: AgentProcess, path: str = "/mesh/ping",
            body: str = "") -> dict[str, Any]:  # fmt: skip
    args = ["mesh", "request", "--dry-run", "--data-dir", str(caller.data_dir), target.mesh_url,
            "POST", path]  # fmt: skip
    if body:
        args += ["--body", body]
    result = edgecoder(*args, env=caller.env)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def send(request: dict[str, Any], **changes: Any) -> tuple[int, str]:
    headers = dict(request["headers"])
    headers.update(changes.pop("headers", {}))
    url = changes.pop("url", request["url"])
    body = changes.pop("body", request["body"])
    response = httpx.post(url, headers=headers, content=body.encode(), timeout=10)
    code = response.json().get("error", {}).get("code", "") if response.status_code != 200 else ""
    return response.status_code, code


def forged(target: AgentProcess, identity: NodeIdentity, **overrides: Any) -> dict[str, Any]:
    _, health = target.get(f"{target.mesh_url}/healthz")
    fields = {"method": "POST", "target": "/mesh/ping", "body": b"",
              "timestamp_ms": int(time.time() * 1000), "recipient": health["node_id"]}  # fmt: skip
    fields.update(overrides)
    headers = envelope.sign_request(
        identity.secret_key, identity.public_key, fields["method"], fields["target"],
        fields["recipient"], fields["body"], fields["timestamp_ms"],
    )  # fmt: skip
    return {"url": target.mesh_url + fields["target"], "headers": headers, "body": ""}


def test_signed_ping_and_every_attack(pair: tuple[AgentProcess, AgentProcess]) -> None:
    target, caller = pair
    sent = edgecoder("mesh", "request", "--data-dir", str(caller.data_dir), target.mesh_url,
                     "POST", "/mesh/ping", env=caller.env)  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert (
        json.loads(sent.stdout)["node_id"] == target.get(f"{target.mesh_url}/healthz")[1]["node_id"]
    )

    captured = dry_run(caller, target, "/mesh/ping?probe=1", body='{"hello":"mesh"}')
    # Tampered copies of a captured request are refused, and leave no trace...
    assert send(captured, body='{"hello":"evil"}') == (401, "body_hash")
    assert send(captured, url=captured["url"].replace("probe=1", "probe=2")) == (
        401,
        "bad_signature",
    )
    assert send(captured, url=captured["url"].replace("?probe=1", "")) == (401, "bad_signature")
    assert send(captured, headers={"x-ec-recipient": "a" * 32}) == (401, "wrong_recipient")
    assert send(captured, headers={"x-ec-signature": "0" * 128}) == (401, "bad_signature")
    assert send(captured, headers={"x-ec-nonce": "f" * 32}) == (401, "bad_signature")
    assert send(captured, headers={"x-ec-key": "1" * 64}) == (401, "bad_key")
    assert send(captured, headers={"x-ec-timestamp": "12x"}) == (401, "bad_header")
    # ...so the genuine request still goes through once, and only once.
    assert send(captured) == (200, "")
    assert send(captured) == (401, "replay")

    stranger = NodeIdentity.generate()  # a node never met before: verified by its own key
    assert send(forged(target, stranger)) == (200, "")
    now = int(time.time() * 1000)
    assert send(forged(target, stranger, timestamp_ms=now - 120_000)) == (401, "skew")
    assert send(forged(target, stranger, timestamp_ms=now + 120_000)) == (401, "skew")
    impostor = forged(target, stranger)
    impostor["headers"]["x-ec-sender"] = caller_id(caller)  # claims the caller's identity
    assert send(impostor) == (401, "bad_key")

    _, health = target.get(f"{target.mesh_url}/healthz")
    refused = health["security"]["refused"]
    assert refused["body_hash"] == 1
    assert refused["replay"] == 1
    assert refused["skew"] == 2
    code, err = target.stop()
    assert code == 0
    assert "edgecoder.audit: refused POST /mesh/ping" in err
    assert "body_hash" in err


def caller_id(caller: AgentProcess) -> str:
    shown = edgecoder("keys", "show", "--json", "--data-dir", str(caller.data_dir), env=caller.env)
    return str(json.loads(shown.stdout)["node_id"])


def test_blacklisted_sender(tmp_path: Path) -> None:
    caller = AgentProcess(tmp_path / "caller")
    caller.start()
    caller.stop()
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "edgecoder.toml").write_text(f'[mesh]\ndeny = ["{caller_id(caller)}"]\n')
    target = AgentProcess(tmp_path / "target")
    target.start()
    try:
        assert send(dry_run(caller, target)) == (401, "blacklisted")
    finally:
        target.stop()


def test_unsigned_flood_does_not_starve_signed_pings(
    pair: tuple[AgentProcess, AgentProcess],
) -> None:
    target, caller = pair
    stop = threading.Event()
    flooded = [0]

    def flood() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set() and flooded[0] < 3000:  # bounded in count and time
                client.post(f"{target.mesh_url}/mesh/ping", content=b"junk")
                flooded[0] += 1

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        results = [send(dry_run(caller, target)) for _ in range(5)]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert results == [(200, "")] * 5
    assert flooded[0] > 50
    _, health = target.get(f"{target.mesh_url}/healthz")
    assert health["security"]["refused"]["missing_header"] >= flooded[0] - 4


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL])
def test_restart_does_not_reopen_the_replay_window(
    pair: tuple[AgentProcess, AgentProcess], stop_signal: int
) -> None:
    target, caller = pair
    captured = dry_run(caller, target)
    assert send(captured) == (200, "")
    target.stop(stop_signal)
    target.start()
    assert send(captured) == (401, "replay")
    assert send(dry_run(caller, target)) == (200, "")


def _post(target: AgentProcess, identity: NodeIdentity, path: str, document: object) -> Any:
    _, health = target.get(f"{target.mesh_url}/healthz")
    body = canonical.encode(document)
    headers = envelope.sign_request(identity.secret_key, identity.public_key, "POST", path,
                                    health["node_id"], body, int(time.time() * 1000))  # fmt: skip
    return httpx.post(f"{target.mesh_url}{path}", headers=headers, content=body, timeout=10)


def test_evidence_and_rotation_records_take_effect(pair: tuple[AgentProcess, AgentProcess]) -> None:
    target, _ = pair
    judge, cheat, old, new = (NodeIdentity.generate() for _ in range(4))
    now = int(time.time() * 1000)
    fork = {
        "first": sign_record(cheat, "ledger_entry", 1, {"amount": 1}, now, 60_000).to_wire(),
        "second": sign_record(cheat, "ledger_entry", 1, {"amount": 2}, now, 60_000).to_wire(),
    }
    bogus = {"first": fork["first"], "second": fork["first"]}
    entries = [blacklist_entry(judge, [], old.node_id, "no proof", "equivocation", bogus, now)]
    accusation = blacklist_entry(judge, [], cheat.node_id, "ledger fork", "equivocation", fork, now)
    rotation = rotation_record(old, new, now, grace_ms=0)
    assert _post(target, cheat, "/mesh/ping", {}).status_code == 200
    response = _post(target, judge, "/mesh/records",
                     {"records": [entries[0].to_wire(), accusation.to_wire(),
                                  rotation.to_wire(), {"kind": "junk"}]})  # fmt: skip
    assert response.status_code == 200, response.text
    outcomes = [(r["result"], r.get("code")) for r in response.json()["results"]]
    assert outcomes == [
        ("refused", "bad_evidence"),  # no proof: nobody is blacklisted on someone's word
        ("applied", None),
        ("applied", None),
        ("refused", "bad_shape"),
    ]
    refused = _post(target, cheat, "/mesh/ping", {})
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "blacklisted")
    retired = _post(target, old, "/mesh/ping", {})
    assert (retired.status_code, retired.json()["error"]["code"]) == (401, "retired_key")
    assert _post(target, new, "/mesh/ping", {}).status_code == 200
    malformed = _post(target, judge, "/mesh/records", {"records": "nope"})
    assert malformed.status_code == 400
