"""Shared fixtures: both event loops, both core implementations, isolated config."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from edgecoder import speedups

# Every async test runs on uvloop and on plain asyncio.
ANYIO_BACKENDS = [
    pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
]

_CORE_NAMES = ("canonical", "chain", "envelope", "replay", "signing")


def _implementations() -> list[Any]:
    params = [pytest.param("pure", id="pure")]
    if os.environ.get("EDGECODER_NO_EXTENSIONS", "").strip() in {"", "0"}:
        params.append(pytest.param("compiled", id="compiled"))
    return params


@pytest.fixture(params=ANYIO_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


class Core:
    """One implementation of the core: ``core.canonical``, ``core.chain``, ``core.signing``."""

    def __init__(self, name: str) -> None:
        self.name = name
        package = f"edgecoder.speedups._{name}"
        for module in _CORE_NAMES:
            setattr(self, module, importlib.import_module(f"{package}.{module}"))

    canonical: ModuleType
    chain: ModuleType
    envelope: ModuleType
    replay: ModuleType
    signing: ModuleType


@pytest.fixture(scope="session", params=_implementations())
def core(request: pytest.FixtureRequest) -> Core:
    """Each implementation of the core in turn (only the pure one under test-pure)."""
    if request.param == "compiled" and not speedups.USING_EXTENSIONS:
        pytest.fail(f"the compiled core did not load: {speedups.FALLBACK_REASON}")
    return Core(request.param)


@pytest.fixture(scope="session")
def pure_core() -> Core:
    return Core("pure")


@pytest.fixture(scope="session")
def compiled_core() -> Core:
    """The compiled core, for cross-checks against the pure one; skipped under test-pure."""
    if os.environ.get("EDGECODER_NO_EXTENSIONS", "").strip() not in {"", "0"}:
        pytest.skip("EDGECODER_NO_EXTENSIONS is set: no compiled core to compare")
    if not speedups.USING_EXTENSIONS:
        pytest.fail(f"the compiled core did not load: {speedups.FALLBACK_REASON}")
    return Core("compiled")


@pytest.fixture
def isolated_env(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """An environment without EdgeCoder settings that reads no /etc config."""
    for name in list(os.environ):
        if name.startswith("EDGECODER_") and name not in {
            "EDGECODER_NO_EXTENSIONS",
            "EDGECODER_REQUIRE_EXTENSIONS",
        }:
            monkeypatch.delenv(name)
    config = tmp_path / "etc" / "edgecoder.toml"
    config.parent.mkdir()
    config.write_text("")
    monkeypatch.setenv("EDGECODER_CONFIG", str(config))
    return dict(os.environ)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No agent process outlives the run that started it (a test that failed half way
    may have left one): it would hold ports and CPU for the next run."""
    from tests.integration.agent_process import close_all

    left = close_all()
    if left:
        print(f"\nclosed {left} agent process(es) a test left running")
