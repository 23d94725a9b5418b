"""What the ``edgecoder`` and ``edgecoderctl`` commands import: only what they run needs.

The appliance runs ``keys init`` and ``setup-code`` at boot under emulation, where each
module costs; ``--help`` and ``version`` should be instant. Each case runs the installed
console-script entry point in a fresh interpreter and reads ``sys.modules`` at its exit,
so a command module that imports the daemon, the web stack or the ledger's economy again
— at its top or in a function — fails here (docs/cli.md, "Start-up cost").
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from edgecoder.cli import ctl
from edgecoder.cli.handler import Handler
from edgecoder.cli.parser import build_parser
from tests.integration.agent_process import free_port

HEAVY = ("edgecoder.daemon", "edgecoder.adapters.web", "edgecoder.adapters.transports",
         "edgecoder.ledger.economy", "starlette", "uvicorn", "httpx", "llama_cpp", "numpy",
         "zeroconf", "dbus_fast")  # fmt: skip
COMMANDS = ("agent", "version", "status", "keys", "models", "mesh", "peers", "tasks",
            "setup-code", "credits")  # fmt: skip
DATA = "--data-dir={tmp}/data"
SETUP = (DATA, "--code-file={tmp}/code", "--issue-file={tmp}/issue")

# Runs one console script as its wrapper would, then writes every module it loaded.
_PROBE = """
import atexit, importlib, sys
listing, target, *argv = sys.argv[1:]
atexit.register(lambda: open(listing, "w").write("\\n".join(sorted(sys.modules))))
module, _, function = target.partition(":")
sys.argv = [module, *argv]
sys.exit(getattr(importlib.import_module(module), function)())
"""


def _run(
    tmp_path: Path, env: dict[str, str], script: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run console script ``script`` with ``args``; its result and the modules it loaded."""
    (point,) = entry_points(group="console_scripts", name=script)
    listing = tmp_path / "modules.txt"
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(listing), point.value, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, set(listing.read_text().split("\n"))


def _heavy(modules: set[str], prefixes: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.fixture
def env(isolated_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    # No bus to reach: edgecoderctl fails at once instead of finding a real agent.
    return {**isolated_env, "DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp_path}/no-bus"}


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "init", DATA),
        ("keys", "show", DATA),
        ("keys", "show", "--json", DATA),
        ("setup-code", *SETUP),
        ("setup-code", "--help"),
        ("version",),
        ("--help",),
        ("keys", "init", "--help"),
    ],
    ids=lambda args: " ".join(a for a in args if "{" not in a),
)
def test_boot_and_help_commands_load_no_heavy_module(
    tmp_path: Path, env: dict[str, str], args: tuple[str, ...]
) -> None:
    argv = [a.format(tmp=tmp_path) for a in args]
    if args[:2] == ("keys", "show"):
        assert _run(tmp_path, env, "edgecoder", "keys", "init", *argv[2:])[0].returncode == 0
    result, modules = _run(tmp_path, env, "edgecoder", *argv)
    assert result.returncode == 0, result.stderr
    assert _heavy(modules) == []


def test_a_command_that_needs_more_still_loads_it(tmp_path: Path, env: dict[str, str]) -> None:
    """The probe sees what a handler imports on use: ``status`` needs the HTTP client."""
    url = f"http://127.0.0.1:{free_port()}"
    result, modules = _run(tmp_path, env, "edgecoder", "status", "--url", url)
    assert result.returncode == 3, result.stderr
    assert result.stderr == f"edgecoder: error: no EdgeCoder node is running at {url}\n"
    assert "httpx" in modules
    assert _heavy(modules, ("edgecoder.daemon", "edgecoder.ledger")) == []


def test_help_lists_every_command(tmp_path: Path, env: dict[str, str]) -> None:
    result, _ = _run(tmp_path, env, "edgecoder", "--help")
    # A command's line is indented by four; its wrapped help, further.
    listed = [line.split()[0] for line in result.stdout.splitlines()
              if line.startswith("    ") and not line.startswith("     ")]  # fmt: skip
    assert tuple(listed) == COMMANDS


def test_edgecoderctl_loads_neither_the_bus_for_help_nor_the_ledger_for_status(
    tmp_path: Path, env: dict[str, str]
) -> None:
    result, modules = _run(tmp_path, env, "edgecoderctl", "--help")
    assert result.returncode == 0, result.stderr
    assert _heavy(modules, (*HEAVY, "edgecoder.ledger", "asyncio")) == []
    result, modules = _run(tmp_path, env, "edgecoderctl", "--session", "status")
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("edgecoderctl: cannot reach the session bus")
    assert "dbus_fast" in modules
    assert _heavy(modules, (*HEAVY[:-1], "edgecoder.ledger")) == []


def _handlers(parser: argparse.ArgumentParser, default: str) -> list[Handler]:
    """Every handler the parser's commands name, at any depth."""
    found: list[Handler] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                handler = sub.get_default(default)
                if handler is not None:
                    found.append(handler)
                found += _handlers(sub, default)
    return found


@pytest.mark.parametrize(
    ("parser", "default", "count"),
    [(build_parser(), "handler", 18), (ctl._parser(), "action", 8)],
    ids=["edgecoder", "edgecoderctl"],
)
def test_every_handler_names_a_function_that_exists(
    parser: argparse.ArgumentParser, default: str, count: int
) -> None:
    handlers = _handlers(parser, default)
    assert len(handlers) == count
    for handler in handlers:
        assert isinstance(handler, Handler)
        assert callable(handler.resolve()), handler
