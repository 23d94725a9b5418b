"""Fixtures of the real-client tests: the npm clients installed (``npm ci``), a node served
on a loopback socket with the scripted backend (:mod:`tests.clients.served`)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.served import Served, served_node

NODE_DIR = Path(__file__).parent / "node"


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
