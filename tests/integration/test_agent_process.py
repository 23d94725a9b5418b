"""The real ``edgecoder agent`` process: listeners, lifecycle, restarts and every refusal."""

from __future__ import annotations

import signal
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgecoder import speedups
from tests.integration.agent_process import AgentProcess, edgecoder, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path)
    yield process
    process.close()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_serves_health_on_both_listeners_and_stops_cleanly(tmp_path: Path, loop: str) -> None:
    agent = AgentProcess(tmp_path, "--loop", loop).start()
    try:
        status, mesh = agent.get(f"{agent.mesh_url}/healthz")
        assert status == 200
        status, api = agent.get(f"{agent.api_url}/healthz")
        assert status == 200
        assert mesh["node_id"] == api["node_id"]
        assert api["extensions"] is speedups.USING_EXTENSIONS
        assert api["backend"]["state"] == "unavailable"
        assert "no Ollama answered at http://127.0.0.1:1" in api["backend"]["reason"]
        assert {"version", "uptime_s", "public_key"} <= api.keys()
        assert api["listeners"] == {
            "mesh": f"127.0.0.1:{agent.mesh_port}",
            "api": f"127.0.0.1:{agent.api_port}",
        }
        ready = next(m for m in agent.messages if "READY=1" in m)
        assert f"STATUS=Serving node {api['node_id']}" in ready
        # Without a key the client listener refuses every route but /healthz and its
        # OpenAPI document; a mesh route does not exist there at all.
        status, body = agent.get(f"{agent.api_url}/v1/models")
        assert (status, body["error"]["code"]) == (401, "invalid_api_key")
        status, body = agent.get(f"{agent.api_url}/mesh/ping")
        assert (status, body["error"]["code"]) == (404, "not_found")
        # The mesh listener refuses anything unsigned before routing, client routes included.
        status, body = agent.get(f"{agent.mesh_url}/v1/models")
        assert (status, body["error"]["code"]) == (401, "missing_header")
    finally:
        code, err = agent.stop(signal.SIGTERM)
    assert code == 0, err
    assert any("STOPPING=1" in m for m in agent.messages)
    assert "node stopped" in err
    assert stat.S_IMODE(agent.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((agent.data_dir / "node.key").stat().st_mode) == 0o600


def test_restart_on_the_same_data_dir_keeps_the_node_id(agent: AgentProcess) -> None:
    agent.start()
    _, first = agent.get(f"{agent.api_url}/healthz")
    assert agent.stop(signal.SIGINT)[0] == 0
    agent.start()
    _, second = agent.get(f"{agent.api_url}/healthz")
    assert agent.stop()[0] == 0
    assert second["node_id"] == first["node_id"]
    shown = edgecoder("keys", "show", "--json", "--data-dir", str(agent.data_dir), env=agent.env)
    assert shown.returncode == 0, shown.stderr
    assert f'"node_id": "{first["node_id"]}"' in shown.stdout


def test_port_in_use_fails_with_one_line_and_creates_nothing(agent: AgentProcess) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", agent.api_port))
        squatter.listen()
        agent.start(wait_ready=False)
        code, err = agent.wait_exit()
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"api listener cannot bind 127.0.0.1:{agent.api_port}" in lines[0]
    assert "in use" in lines[0]
    assert not agent.data_dir.exists()


def test_unknown_config_key_is_rejected_by_name(tmp_path: Path) -> None:
    config = tmp_path / "edgecoder.toml"
    config.write_text("[mesh]\nprot = 4301\n")
    agent = AgentProcess(tmp_path)
    agent.start(wait_ready=False)
    code, err = agent.wait_exit()
    assert code == 2
    assert err.strip() == f"edgecoder: error: unknown key mesh.prot in {config}"
    assert not agent.data_dir.exists()


def test_unusable_data_dir_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    agent = AgentProcess(tmp_path)
    agent.data_dir = blocker / "data"
    agent.start(wait_ready=False)
    code, err = agent.wait_exit()
    assert code == 1
    assert err.strip().splitlines() == [
        f"edgecoder: error: data dir {agent.data_dir}: {blocker} is not a directory"
    ]


def test_sealed_key_round_trip_and_wrong_passphrase(tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("open sesame\n")
    config = tmp_path / "edgecoder.toml"
    config.write_text(f'[identity]\npassphrase_file = "{secret}"\n')
    agent = AgentProcess(tmp_path).start()
    _, first = agent.get(f"{agent.api_url}/healthz")
    assert agent.stop()[0] == 0
    shown = edgecoder("keys", "show", "--data-dir", str(agent.data_dir), env=agent.env)
    assert "sealed      yes" in shown.stdout
    agent.start()
    _, second = agent.get(f"{agent.api_url}/healthz")
    assert agent.stop()[0] == 0
    assert second["node_id"] == first["node_id"]
    secret.write_text("wrong\n")
    agent.start(wait_ready=False)
    code, err = agent.wait_exit()
    assert code == 1
    assert "wrong passphrase" in err.strip().splitlines()[-1]


def test_watchdog_pings_arrive(tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path)
    agent.env = dict(agent.env, WATCHDOG_USEC="200000")
    agent.start()
    try:
        agent.wait_for("WATCHDOG=1")
    finally:
        assert agent.stop()[0] == 0


def test_status_and_cli_misuse(agent: AgentProcess) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    result = edgecoder("status", "--url", nobody, env=agent.env)
    assert result.returncode == 3
    assert result.stderr == f"edgecoder: error: no EdgeCoder node is running at {nobody}\n"

    agent.start()
    try:
        result = edgecoder("status", "--url", agent.api_url, env=agent.env)
        assert result.returncode == 0, result.stderr
        assert "core     " in result.stdout
        _, health = agent.get(f"{agent.api_url}/healthz")
        assert health["node_id"] in result.stdout
    finally:
        agent.stop()

    for args, needle in [
        (["agent", "--bogus"], "unrecognized arguments: --bogus"),
        (["agent", "--mesh-port", "http"], "mesh.port (from --mesh-port) must be a whole number"),
        (["agent", "--backend", "gpu"], "invalid choice: 'gpu'"),
        (["agent", "--bootstrap", "peer:4301"], "mesh.bootstrap (from --bootstrap)"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
    ]:
        result = edgecoder(*args, env=agent.env)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert needle in result.stderr

    fresh = agent.workdir / "never-started"
    result = edgecoder("keys", "show", "--data-dir", str(fresh), env=agent.env)
    assert result.returncode == 1
    assert "start the agent once to create it" in result.stderr
    assert not fresh.exists()
