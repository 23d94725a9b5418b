"""The core knows no transport (DESIGN.md §3, §15), checked on the source of every module.

Nothing under ``edgecoder/{wire,security,mesh,tasks,inference,ledger}`` imports a web framework,
an HTTP client, an adapter, the daemon or the CLI, or names an HTTP status or a URL path;
and no adapter imports a sibling adapter. The checker reads each module's AST, so a lazy
import inside a function counts as much as one at the top.

What counts as naming an HTTP status: an integer from 100 to 599 compared with, assigned
to, or passed as a keyword named like ``status`` (``status``, ``status_code``,
``http_status``...), or given first to an exception (``SomeError(409, ...)``). A URL path
is a string (or a literal part of an f-string) that names one of the node's routes
(``/mesh/``, ``/v1/``, ``/api/``, ``/admin/``, ``/k/``, ``/healthz``) outside a docstring.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "edgecoder"
CORE = ("wire", "security", "mesh", "tasks", "inference", "ledger")
ADAPTERS = ("backends", "control", "discovery", "transports", "web")
FORBIDDEN = ("starlette", "uvicorn", "httpx", "h11", "edgecoder.adapters", "edgecoder.daemon",
             "edgecoder.cli")  # fmt: skip
URL_PATH = re.compile(r"(?<![\w.])/(?:(?:mesh|v1|api|admin|k)/|healthz\b)")
ALLOWED: frozenset[str] = frozenset()
"""Violations known and accepted, exactly as :func:`violations` words them (none)."""


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _is_status_name(node: ast.expr) -> bool:
    return "status" in _dotted(node).lower()


def _statuses(node: ast.expr) -> list[int]:
    """HTTP-status-like integer literals in ``node`` (itself, or a collection's items)."""
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        items = node.elts
    elif isinstance(node, ast.Dict):
        items = node.values
    else:
        items = [node]
    return [
        item.value
        for item in items
        if isinstance(item, ast.Constant) and type(item.value) is int and 100 <= item.value <= 599
    ]


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    return [node.module or ""]


def violations(source: str, where: str, forbidden: tuple[str, ...] = FORBIDDEN) -> list[str]:
    """Each way the module ``source`` (named ``where``) breaks the rules, one line each."""
    found = []
    tree = ast.parse(source)
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    for node in ast.walk(tree):
        line = f"{where}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name in _imported(node):
                if any(name == bad or name.startswith(bad + ".") for bad in forbidden):
                    found.append(f"{line}: imports {name}")
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_status_name(side) for side in sides):
                for side in sides:
                    found += [f"{line}: compares a status with {n}" for n in _statuses(side)]
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if node.value is not None and any(_is_status_name(t) for t in targets):
                found += [f"{line}: assigns status {n}" for n in _statuses(node.value)]
        elif isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg and "status" in keyword.arg.lower():
                    found += [f"{line}: passes status {n}" for n in _statuses(keyword.value)]
            if node.args and _dotted(node.func).endswith("Error"):
                found += [f"{line}: raises with status {n}" for n in _statuses(node.args[0])]
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and URL_PATH.search(node.value)
        ):
            found.append(f"{line}: names the URL path {node.value!r}")
    return found


def _modules(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (ROOT / package).rglob("*.py"))


def _where(path: Path) -> str:
    return str(path.relative_to(ROOT.parent))


def test_the_core_imports_no_transport_and_names_no_status_or_path() -> None:
    modules = _modules(*CORE)
    assert len(modules) > 30  # the packages were found at all
    found = set()
    for path in modules:
        found.update(violations(path.read_text(encoding="utf-8"), _where(path)))
    assert found - ALLOWED == set()
    assert ALLOWED - found == set(), "allowed violations that are gone: drop them"


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_an_adapter_imports_no_sibling_adapter(adapter: str) -> None:
    siblings = tuple(f"edgecoder.adapters.{other}" for other in ADAPTERS if other != adapter)
    modules = _modules(f"adapters/{adapter}")
    assert modules
    found = []
    for path in modules:
        found += violations(path.read_text(encoding="utf-8"), _where(path), siblings)
    assert [line for line in found if ": imports " in line] == []


# -- the checker itself: each rule catches what it should, and only that -----------------

BAD = """
import httpx
from starlette.responses import JSONResponse
from edgecoder.adapters.transports.statuses import refusal_status

def handler(exc, response):
    from edgecoder.daemon import agent
    if response.status_code == 409 or exc.status >= 500 or status not in (0, 200):
        pass
    status = 404
    self.http_status: int = 503
    STATUS = {"too_large": 413}
    reply(body, status_code=429)
    raise GossipError(400, "bad_shape", "no")
    post("/mesh/tasks/offer")
    get(f"/v1/models/{name}")
    log(f"{kind} records travel by /mesh/records")
    x = "/healthz"
"""

GOOD = '''
"""Sent to a peer's /mesh/gossip route: the docstring may say so; code may not."""
import asyncio
from edgecoder.errors import RefusedError

def handler(exc, answer, count):
    if exc.code == "duplicate_node_id" or count >= 500 or answer.status == "done":
        pass
    timeout_ms = 409
    status = "ok"
    raise RefusedError("not_claimed", "no open claim for that attempt")
    message = f"{kind} records travel by gossip"
    path = "mesh/tasks"
    where = "/etc/edgecoder/conf.d/k/x.toml and /var/lib/edgecoder/mesh/"
    size = 1 << 20
'''


def test_the_checker_finds_each_kind_of_violation() -> None:
    found = violations(BAD, "bad.py")
    text = "\n".join(found)
    for expected in (
        "bad.py:2: imports httpx",
        "bad.py:3: imports starlette.responses",
        "bad.py:4: imports edgecoder.adapters.transports.statuses",
        "bad.py:7: imports edgecoder.daemon",
        "bad.py:8: compares a status with 409",
        "bad.py:8: compares a status with 500",
        "bad.py:8: compares a status with 200",
        "bad.py:10: assigns status 404",
        "bad.py:11: assigns status 503",
        "bad.py:12: assigns status 413",
        "bad.py:13: passes status 429",
        "bad.py:14: raises with status 400",
        "bad.py:15: names the URL path '/mesh/tasks/offer'",
        "bad.py:16: names the URL path '/v1/models/'",
        "bad.py:17: names the URL path ' records travel by /mesh/records'",
        "bad.py:18: names the URL path '/healthz'",
    ):
        assert expected in text
    assert len(found) == 16


def test_the_checker_has_no_false_positives_on_neutral_code() -> None:
    assert violations(GOOD, "good.py") == []


def test_the_checker_reads_a_module_on_disk(tmp_path: Path) -> None:
    module = tmp_path / "bad_module.py"
    module.write_text("import uvicorn\nSTATUS = 200\n", encoding="utf-8")
    assert violations(module.read_text(), "bad_module.py") == [
        "bad_module.py:1: imports uvicorn",
        "bad_module.py:2: assigns status 200",
    ]
