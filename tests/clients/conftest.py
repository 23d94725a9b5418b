"""Fixtures of the real-client tests: the npm clients installed (``npm ci``), a node served
on a loopback socket with the scripted backend (:mod:`tests.clients.served`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.served import Served, served_node

NODE_DIR = Path(__file__).parent / "node"
PYPI_DIR = Path(__file__).parent / "pypi"
ROOT = Path(__file__).parents[2]
VENVS = {".venv-clients": "requirements-clients.txt", ".venv-aider": "requirements-aider.txt"}
"""The clients' own environments (kept apart from the project's: their pins differ)."""


@pytest.fixture(scope="session")
def npm_clients() -> Path:
    """``tests/clients/node`` with its ``node_modules`` as ``package-lock.json`` pins them.

    ``make test`` runs ``npm ci`` first; this does it too when the modules are missing or
    older than the lock, so the tests run from a bare checkout.
    """
    if shutil.which("npm") is None:
        pytest.fail("npm is needed for the real-client tests (Debian: apt-get install npm)")
    lock, installed = NODE_DIR / "package-lock.json", NODE_DIR / "node_modules/.package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True,
                       stdout=subprocess.DEVNULL, timeout=600)  # fmt: skip
    return NODE_DIR


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with served_node(tmp_path / "node") as node:
        yield node


def _venv(name: str) -> Path:
    """The client environment ``name``, made from its requirements file when missing or stale.

    ``make test`` makes them first (``make clients``); this does it too, so the tests run
    from a bare checkout.
    """
    venv, requirements = ROOT / name, PYPI_DIR / VENVS[name]
    stamp = venv / ".installed"
    if not stamp.exists() or stamp.stat().st_mtime < requirements.stat().st_mtime:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "-r",
                        str(requirements)], check=True, timeout=1800)  # fmt: skip
        stamp.touch()
    return venv


@pytest.fixture(scope="session")
def clients_venv() -> Path:
    """``.venv-clients``: LiteLLM, LangChain (OpenAI and Ollama), ``llm``."""
    return _venv(".venv-clients")


@pytest.fixture(scope="session")
def aider_venv() -> Path:
    """``.venv-aider``: aider."""
    return _venv(".venv-aider")
