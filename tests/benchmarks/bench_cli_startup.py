"""Start-up cost of the ``edgecoder`` and ``edgecoderctl`` commands; prints JSON.

Run: ``.venv/bin/python tests/benchmarks/bench_cli_startup.py [--runs N] [--compare DIR]``.

For each command (those the appliance runs at boot, ``--help``, ``version``, and two that
need more for contrast), run through the venv's console scripts as systemd runs them:

* ``modules``: what ``sys.modules`` holds at exit (a probe interpreter runs the script);
* ``importtime``: the lines ``python -X importtime`` logs (docs/cli.md quotes both; a
  module imported by ``importlib.import_module``, as command handlers are, logs no line
  of its own, only its imports do);
* ``heavy``: how many of those modules belong to the daemon, the web adapters and
  transports, the ledger's economy, or starlette, uvicorn, httpx, llama_cpp, numpy,
  zeroconf, dbus_fast;
* ``best_ms``: the best wall time of N runs (5), process start to exit.

``--compare DIR`` measures the source tree DIR too (put first on ``PYTHONPATH``, so the
same venv runs another checkout: ``git worktree add /tmp/old <commit>``; copy the compiled
``edgecoder/speedups/_compiled/*.so`` into it, or it runs the pure core), side by side in
the same run so the machine's load hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HEAVY = ("edgecoder.daemon", "edgecoder.adapters.web", "edgecoder.adapters.transports",
         "edgecoder.ledger.economy", "starlette", "uvicorn", "httpx", "llama_cpp", "numpy",
         "zeroconf", "dbus_fast")  # fmt: skip
BIN = Path(sys.executable).parent

# Runs a console script as Python would, then writes every module it loaded.
_PROBE = """
import atexit, runpy, sys
listing = sys.argv.pop(1)
atexit.register(lambda: open(listing, "w").write("\\n".join(sorted(sys.modules))))
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _cases(tmp: Path) -> list[tuple[str, str, list[str]]]:
    data = f"--data-dir={tmp}/data"
    setup = [data, f"--code-file={tmp}/code", f"--issue-file={tmp}/issue"]
    return [
        ("edgecoder keys init", "edgecoder", ["keys", "init", data]),
        ("edgecoder keys show", "edgecoder", ["keys", "show", data]),
        ("edgecoder setup-code", "edgecoder", ["setup-code", *setup]),
        ("edgecoder setup-code --help", "edgecoder", ["setup-code", "--help"]),
        ("edgecoder version", "edgecoder", ["version"]),
        ("edgecoder --help", "edgecoder", ["--help"]),
        ("edgecoder status (no node)", "edgecoder", ["status", "--url", "http://127.0.0.1:9"]),
        ("edgecoderctl --help", "edgecoderctl", ["--help"]),
        ("edgecoderctl status (no bus)", "edgecoderctl", ["--session", "status"]),
    ]


def _measure(
    script: str, args: list[str], env: dict[str, str], runs: int, tmp: Path
) -> dict[str, Any]:
    path = str(BIN / script)
    # cwd: ``python -c`` puts it first on sys.path, before --compare's tree.
    quiet: dict[str, Any] = {"env": env, "cwd": tmp, "stdout": subprocess.DEVNULL,
                             "check": False}  # fmt: skip
    listing = tmp / "modules.txt"
    subprocess.run([sys.executable, "-c", _PROBE, str(listing), path, *args],
                   stderr=subprocess.DEVNULL, **quiet)  # fmt: skip
    modules = listing.read_text().split("\n")
    logged = subprocess.run([sys.executable, "-X", "importtime", path, *args],
                            stderr=subprocess.PIPE, text=True, **quiet).stderr  # fmt: skip
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, path, *args], stderr=subprocess.DEVNULL, **quiet)
        best = min(best, time.perf_counter() - start)
    return {
        "modules": len(modules),
        "importtime": sum(line.startswith("import time:") for line in logged.splitlines()),
        "heavy": sum(any(m == h or m.startswith(h + ".") for h in HEAVY) for m in modules),
        "best_ms": round(best * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--compare", type=Path, metavar="DIR", help="another source tree")
    options = parser.parse_args()
    trees: dict[str, str | None] = {"this": None}
    if options.compare:
        trees["compare"] = str(options.compare.resolve())
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("EDGECODER_") or k.endswith("_EXTENSIONS")}  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "edgecoder.toml").write_text("")
        env |= {"EDGECODER_CONFIG": str(tmp / "edgecoder.toml"),
                "DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp}/no-bus"}  # fmt: skip
        for label, script, args in _cases(tmp):
            results[label] = {}
            for tree, root in trees.items():
                run_env = env if root is None else env | {"PYTHONPATH": root}
                results[label][tree] = _measure(script, args, run_env, options.runs, tmp)
    print(json.dumps({"python": sys.version.split()[0], "runs": options.runs,
                      "commands": results}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
