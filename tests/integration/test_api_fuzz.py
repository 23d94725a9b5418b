"""Schemathesis against a real agent with the real model: every route of ``/openapi.json``.

The agent serves its own OpenAPI document; schemathesis reads it and runs its examples,
coverage (boundary and negative values), fuzzing and stateful phases against every
operation, checking that nothing answers a 5xx other than the documented ones, that every
status and content type is documented, and that responses match their schemas.

``/infill`` is left out here: its ``model`` is optional, so almost every generated body
would run a real generation of random length; its hostile inputs are covered in process
(``tests/unit/test_api_hostile_input.py``). Every other inference route needs an exact
model name, which random data never hits, so this run exercises parsing and refusals at
full speed, not the model. ``/admin/events`` is left out too: it is a stream that never
ends by design, so every generated request would wait out the request timeout; it is
tested in process (``tests/unit/test_events_api.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.nodes import ModelNode

pytestmark = [pytest.mark.integration, pytest.mark.model, pytest.mark.slow]

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
MAX_EXAMPLES = 40


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelNode]:
    # Schemathesis tries requests without a key, or a wrong one: lift the limits on those
    # (the per-address failure limit would otherwise lock its own loopback address out).
    config = (
        "[api]\nrate_limit_per_min = 600000\nrate_limit_burst = 100000\n"
        "auth_failure_burst = 100000\nauth_failures_per_min = 600000\n"
    )
    running = ModelNode(tmp_path_factory.mktemp("node"), config)
    yield running
    running.stop()


@pytest.mark.timeout(1800)
def test_schemathesis_finds_no_undocumented_answer_on_any_route(
    node: ModelNode, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", f"{node.url}/openapi.json",
        "--url", node.url, "-H", f"Authorization: Bearer {node.admin_key}",
        "--checks", ",".join(CHECKS), "--max-examples", str(MAX_EXAMPLES), "--seed", "14",
        "--phases", "examples,coverage,fuzzing,stateful", "--exclude-path", "/infill",
        "--exclude-path", "/admin/events",
        "--request-timeout", "120", "--report", "ndjson", "--report-ndjson-path", str(report),
        "--no-color", "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_TELEMETRY": "false"}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=1700, env=env, cwd=tmp_path
    )
    print(result.stdout[-6000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Traceback" not in node.agent.log(), "one line per refusal, never a traceback"
    cases = sum(1 for line in report.read_text().splitlines() if '"ScenarioFinished"' in line)
    print(json.dumps({"schemathesis_scenarios": cases, "max_examples": MAX_EXAMPLES}))
