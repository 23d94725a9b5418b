"""Start real ``edgecoder agent`` processes for tests, and wait on them through sd_notify."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import weakref
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(config_file: Path, **extra: str) -> dict[str, str]:
    """The test's environment without EdgeCoder settings, reading only ``config_file``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("EDGECODER_")
        or k in {"EDGECODER_NO_EXTENSIONS", "EDGECODER_REQUIRE_EXTENSIONS"}
    }
    env.pop("NOTIFY_SOCKET", None)
    env.pop("WATCHDOG_USEC", None)
    env.pop("JOURNAL_STREAM", None)
    env["EDGECODER_CONFIG"] = str(config_file)
    # Nothing listens on port 1: the auto backend falls back to the embedded one at once.
    env["EDGECODER_INFERENCE_OLLAMA_URL"] = "http://127.0.0.1:1"
    # A test mesh founds its economy within seconds, and every node in it is a founder
    # (docs/ledger.md §5): requesters can pay their peers as soon as the mesh forms.
    env["EDGECODER_LEDGER_GENESIS_WAIT_S"] = "3"
    env["EDGECODER_LEDGER_FOUNDERS_MAX"] = "1024"
    env["EDGECODER_LEDGER_EPOCH_S"] = "2"  # a checkpoint every other second
    env.update(extra)
    return env


def edgecoder(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run one ``edgecoder`` command to completion."""
    return subprocess.run(
        [sys.executable, "-m", "edgecoder", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


_RUNNING: weakref.WeakSet[AgentProcess] = weakref.WeakSet()


def close_all() -> int:
    """Kill every agent process a test started and left running; how many there were."""
    left = [agent for agent in _RUNNING if agent.proc is not None and agent.proc.poll() is None]
    for agent in left:
        agent.close()
    return len(left)


class AgentProcess:
    """One agent process with its own data dir, ports and notify socket.

    Without ``--backend`` in ``args`` it runs with the Ollama backend pointed at a dead
    port, so lifecycle tests never load a model; pass ``--backend llamacpp`` for one.
    """

    def __init__(
        self,
        workdir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = (),
        host: str = "127.0.0.1",
        mdns: bool = False,
    ) -> None:
        """``prefix`` runs the agent under a wrapper (``ip netns exec NS``); ``host`` is
        where it listens (``--bind``) and is reached; ``mdns`` leaves discovery on."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.config_file = workdir / "edgecoder.toml"
        if not self.config_file.exists():
            self.config_file.write_text("")
        self.mesh_port = free_port()
        self.api_port = free_port()
        self.args = args if "--backend" in args else ("--backend", "ollama", *args)
        self.env = env if env is not None else clean_env(self.config_file)
        self.prefix = prefix
        self.host = host
        self.mdns = mdns
        self.messages: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self._notify: socket.socket | None = None

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def mesh_url(self) -> str:
        return f"http://{self.host}:{self.mesh_port}"

    def start(self, *, wait_ready: bool = True) -> AgentProcess:
        notify_path = self.workdir / f"notify-{time.monotonic_ns()}"
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(notify_path))
        self._notify.setblocking(False)
        self.messages = []
        args = [
            *self.prefix, sys.executable, "-m", "edgecoder", "agent",
            "--data-dir", str(self.data_dir),
            "--bind", self.host,
            "--mesh-port", str(self.mesh_port),
            "--api-port", str(self.api_port),
            *(() if self.mdns else ("--no-mdns",)),
            *self.args,
        ]  # fmt: skip
        env = dict(self.env, NOTIFY_SOCKET=str(notify_path))
        # stderr goes to a file, not a pipe: a pipe nobody reads while the agent runs
        # would block a busy agent once it fills.
        self.log_path = self.workdir / f"agent-{time.monotonic_ns()}.log"
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                args, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True
            )
        _RUNNING.add(self)
        if wait_ready:
            self.wait_for("READY=1")
        return self

    def wait_for(self, line: str, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until the agent sends a notification containing ``line``."""
        assert self.proc is not None
        assert self._notify is not None
        deadline = time.monotonic() + timeout
        while not any(line in m.split("\n") for m in self.messages):
            if self.proc.poll() is not None:
                self.drain()
                if any(line in m.split("\n") for m in self.messages):
                    return
                self.proc.wait()
                err = self.log()
                raise AssertionError(f"agent exited {self.proc.returncode} before {line}: {err}")
            if time.monotonic() > deadline:
                raise AssertionError(f"agent sent no {line} within {timeout}s: {self.messages}")
            select.select([self._notify], [], [], 0.2)
            self.drain()

    def log(self) -> str:
        """What the agent wrote to stderr in its current (or last) run."""
        return self.log_path.read_text(errors="replace") if self.proc is not None else ""

    def drain(self) -> None:
        assert self._notify is not None
        try:
            while True:
                self.messages.append(self._notify.recv(65536).decode())
        except BlockingIOError:
            pass

    def get(self, url: str) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str]:
        """Send ``sig`` and wait; returns the exit code and stderr."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=timeout)
        self.drain()
        self.close()
        return self.proc.returncode, self.log()

    def wait_exit(self, timeout: float = 60) -> tuple[int, str]:
        """Wait for the agent to exit by itself; returns the exit code and stderr."""
        assert self.proc is not None
        self.proc.wait(timeout=timeout)
        self.drain()
        self.close()
        return self.proc.returncode, self.log()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._notify is not None:
            self._notify.close()
            self._notify = None
