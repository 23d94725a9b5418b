"""Every module imports alone in a fresh interpreter: no cycles, no import-time side effects."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import edgecoder


def _modules() -> list[str]:
    names = ["edgecoder"]
    for info in pkgutil.walk_packages(edgecoder.__path__, "edgecoder."):
        if info.name != "edgecoder.__main__":
            names.append(info.name)
    return sorted(names)


MODULES = _modules()


def test_the_walk_finds_the_tree() -> None:
    assert "edgecoder.daemon.agent" in MODULES
    assert "edgecoder.speedups._pure.canonical" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
