"""Real agents on a tiny tmpfs: a disk that fills, a read-only data dir, refused starts.

What an operator sees: one clear line and a documented exit code, no traceback, no
half-created data dir, the database closed on stop, and a node that starts again as
soon as space is back, with everything it had acknowledged.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.disks import fill, tiny_tmpfs
from tests.integration.agent_process import AgentProcess, edgecoder

pytestmark = pytest.mark.integration


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted afterwards."""
    with tiny_tmpfs(tmp_path) as mountpoint:
        yield mountpoint


def remount(mountpoint: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mountpoint)], check=True)


def error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("edgecoder: error: ")]


def post(url: str, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310 - a loopback URL the test built
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_full_disk_then_stop_then_restart_once_space_is_back(tmp_path: Path, tiny: Path) -> None:
    agent = AgentProcess(tmp_path / "node")
    agent.data_dir = tiny / "data"
    database = agent.data_dir / "edgecoder.db"
    agent.start()
    try:
        keys = ("keys", "create", "--data-dir", str(agent.data_dir))
        admin = edgecoder(*keys, "--admin", "admin", env=agent.env)
        assert admin.returncode == 0, admin.stderr
        key = admin.stdout.strip()
        made = edgecoder(*keys, "before", env=agent.env)
        assert made.returncode == 0, made.stderr
        filler = fill(tiny)

        refused = edgecoder(*keys, "during", env=agent.env)
        assert refused.returncode == 1
        assert refused.stderr.splitlines() == [
            f"edgecoder: error: data dir {agent.data_dir} is full (database or disk is full): "
            f"a write to {database} failed"
        ]
        # The running node answers the same fault in its API, and keeps serving.
        status, body = post(f"{agent.api_url}/admin/keys", key, {"name": "during-api"})
        assert (status, body["error"]["code"]) == (507, "insufficient_storage"), body
        assert f"data dir {agent.data_dir} is full" in body["error"]["message"]
        status, _ = agent.get(f"{agent.api_url}/healthz")
        assert status == 200
        # Space is back: the same node writes again, with no restart.
        filler.unlink()
        status, body = post(f"{agent.api_url}/admin/keys", key, {"name": "after-api"})
        assert status == 201, body
        filler = fill(tiny)
    finally:
        code, log = agent.stop(signal.SIGTERM)

    assert "Traceback" not in log
    # A clean exit, or one clear line that says why the stop was not clean.
    if code == 0:
        assert "node stopped" in log
    else:
        assert code == 1, log
        (line,) = error_lines(log)
        assert f"data dir {agent.data_dir} is full" in line
    assert f"database {database} closed" in log
    assert [n for n in os.listdir(agent.data_dir) if n.endswith(".tmp")] == []

    filler.unlink()
    agent.start()
    try:
        listed = edgecoder("keys", "list", "--data-dir", str(agent.data_dir), env=agent.env)
        assert listed.returncode == 0, listed.stderr
        names = {line.split()[0] for line in listed.stdout.splitlines()[1:]}
        assert names == {"admin", "before", "after-api"}
    finally:
        code, log = agent.stop(signal.SIGTERM)
    assert code == 0, log
    # A stop with room to spare checkpoints: no write-ahead log is left behind.
    assert not (agent.data_dir / "edgecoder.db-wal").exists()


def test_read_only_data_dir_is_refused_with_one_line(tmp_path: Path, tiny: Path) -> None:
    agent = AgentProcess(tmp_path / "node")
    agent.data_dir = tiny / "data"
    agent.start()
    assert agent.stop()[0] == 0
    before = sorted(os.listdir(agent.data_dir))
    remount(tiny, "ro")
    try:
        agent.start(wait_ready=False)
        code, log = agent.wait_exit()
        assert code == 1
        assert log.splitlines() == [
            f"edgecoder: error: data dir {agent.data_dir} is read-only (Read-only file system)"
        ]
        assert sorted(os.listdir(agent.data_dir)) == before

        fresh = AgentProcess(tmp_path / "fresh")
        fresh.data_dir = tiny / "never-started"
        fresh.start(wait_ready=False)
        code, log = fresh.wait_exit()
        assert code == 1
        assert log.splitlines() == [
            f"edgecoder: error: data dir {fresh.data_dir} cannot be created: "
            f"{tiny} is read-only (Read-only file system)"
        ]
    finally:
        remount(tiny, "rw")
    agent.start()
    assert agent.stop()[0] == 0


def test_full_disk_at_first_start_leaves_no_data_dir(tmp_path: Path, tiny: Path) -> None:
    agent = AgentProcess(tmp_path / "node")
    agent.data_dir = tiny / "data"
    filler = fill(tiny)
    agent.start(wait_ready=False)
    code, log = agent.wait_exit()
    assert code == 1, log
    assert "Traceback" not in log
    assert error_lines(log) == [
        f"edgecoder: error: data dir {agent.data_dir} is full (No space left on device): "
        f"writing {agent.data_dir / 'node.key'} failed"
    ]
    assert sorted(os.listdir(tiny)) == ["filler"]
    filler.unlink()
    agent.start()
    assert agent.stop()[0] == 0


def _squat(agent: AgentProcess) -> socket.socket:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", agent.api_port))
    squatter.listen()
    return squatter


@pytest.mark.parametrize(
    ("setting", "code", "needle"),
    [
        ("port in use", 1, "api listener cannot bind"),
        ("unreadable passphrase file", 2, "identity.passphrase_file"),
        ("bad backend", 2, "inference.backend (from"),
    ],
)
@pytest.mark.parametrize("data_dir", ["new", "existing"])
def test_refused_start_exits_with_its_code_and_touches_no_data_dir(
    tmp_path: Path, setting: str, code: int, needle: str, data_dir: str
) -> None:
    agent = AgentProcess(tmp_path)
    if data_dir == "existing":
        agent.start()
        assert agent.stop()[0] == 0
        before = {p.name: p.read_bytes() for p in agent.data_dir.iterdir() if p.is_file()}
    if setting == "unreadable passphrase file":
        agent.config_file.write_text(f'[identity]\npassphrase_file = "{tmp_path / "gone"}"\n')
    elif setting == "bad backend":
        agent.config_file.write_text('[inference]\nbackend = "gpu"\n')
        agent.args = ()
    squatter = _squat(agent) if setting == "port in use" else None
    try:
        agent.start(wait_ready=False)
        exit_code, log = agent.wait_exit()
    finally:
        if squatter is not None:
            squatter.close()
    assert exit_code == code, log
    (line,) = log.strip().splitlines()
    assert line.startswith("edgecoder: error: ")
    assert needle in line
    if data_dir == "new":
        assert not agent.data_dir.exists()
    else:
        after = {p.name: p.read_bytes() for p in agent.data_dir.iterdir() if p.is_file()}
        assert after == before


def test_failed_first_start_in_an_existing_dir_removes_only_what_it_created(
    tmp_path: Path,
) -> None:
    agent = AgentProcess(tmp_path)
    agent.data_dir.mkdir(mode=0o700)  # as systemd's StateDirectory= leaves it
    (agent.data_dir / "notes.txt").write_text("the operator's")
    (agent.data_dir / "replay.json").mkdir()  # unreadable replay state: a start-up failure
    agent.start(wait_ready=False)
    code, log = agent.wait_exit()
    assert code == 1, log
    assert "Traceback" not in log
    (line,) = error_lines(log)
    assert f"reading {agent.data_dir / 'replay.json'} failed" in line
    # The key and the database this start made are gone; what was there stays.
    assert sorted(os.listdir(agent.data_dir)) == ["notes.txt", "replay.json"]
    assert (agent.data_dir / "notes.txt").read_text() == "the operator's"
