"""Agents with the real embedded model, shared across a test module."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

from edgecoder.adapters.backends.gguf_import import DEFAULT_MODEL, MODELS_DIR, default_model_file
from tests.integration.agent_process import AgentProcess, edgecoder


@functools.cache
def _assembled_default_model() -> Path:
    shared = Path(tempfile.mkdtemp(prefix="edgecoder-model-"))
    path = default_model_file(shared)
    assert path is not None, "the default model's package is not installed"
    return path


def share_default_model(data_dir: Path) -> None:
    """Hard-link one assembled copy of the default model into ``data_dir``.

    Each agent would otherwise assemble its own 250 MB copy on first start: slow and
    heavy when a test runs twenty of them.
    """
    models = data_dir / MODELS_DIR
    models.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = models / (DEFAULT_MODEL.replace(":", "-") + ".gguf")
    if not target.exists():
        os.link(_assembled_default_model(), target)


class ModelNode:
    """A running agent on the embedded backend, with a user key and an admin key."""

    def __init__(self, workdir: Path, config: str = "", *, calibrate: bool = False) -> None:
        """``calibrate`` leaves the start-up calibration on; off by default so that tests
        which count slots find them free."""
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "edgecoder.toml").write_text(config)
        self.agent = AgentProcess(workdir, "--backend", "llamacpp")
        if not calibrate:
            self.agent.env["EDGECODER_MESH_CALIBRATE"] = "false"
        data = ["--data-dir", str(self.agent.data_dir)]
        self.key = self._key("alice", data)
        self.admin_key = self._key("root", [*data, "--admin"])
        self.agent.start()
        self.node_id = str(self.agent.get(f"{self.agent.api_url}/healthz")[1]["node_id"])

    def _key(self, name: str, args: list[str]) -> str:
        result = edgecoder("keys", "create", name, *args, env=self.agent.env)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    @property
    def url(self) -> str:
        return self.agent.api_url

    def stop(self) -> None:
        code, err = self.agent.stop()
        assert code == 0, err
