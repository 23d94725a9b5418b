"""``edgecoder tasks``: the mesh tasks the local node offered and ran, from ``GET /admin/tasks``.

Needs an admin API key: ``--api-key KEY`` or the ``EDGECODER_API_KEY`` variable.
"""

from __future__ import annotations

import argparse
import json

from edgecoder.cli.node_http import admin_key, get_json, node_url, print_table

__all__ = ("run",)


def _ms(start: int | None, end: int | None) -> str:
    return "-" if start is None or end is None else f"{end - start} ms"


def _short(node_id: object) -> str:
    return str(node_id)[:12] if node_id else "-"


def run(args: argparse.Namespace) -> int:
    """Print the tasks and runs as two tables (or JSON)."""
    document = get_json(node_url(args), f"/admin/tasks?limit={args.limit}", admin_key(args))
    if args.json:
        print(json.dumps(document, indent=2, sort_keys=True))
        return 0
    tasks, runs = document.get("tasks", []), document.get("runs", [])
    print(f"offered by this node ({len(tasks)}):")
    if tasks:
        rows = [["TASK", "STATE", "MODEL", "WORKER", "ATTEMPTS", "CLAIMS", "TOKENS",
                 "FIRST TOKEN", "TOTAL"]]  # fmt: skip
        rows += [
            [t["task_id"][:12], t["state"], t["model"], _short(t["worker"]), str(t["attempts"]),
             str(t["claims"]), str(t["output_tokens"]), _ms(t["created_ms"], t["first_token_ms"]),
             _ms(t["created_ms"], t["finished_ms"])]
            for t in tasks
        ]  # fmt: skip
        print_table(rows)
    print(f"\nrun for peers ({len(runs)}):")
    if runs:
        rows = [["TASK", "ATTEMPT", "STATE", "MODEL", "ORIGIN", "PROMPT", "OUTPUT", "TOTAL"]]
        rows += [
            [r["task_id"][:12], str(r["attempt"]), r["state"], r["model"], _short(r["origin"]),
             str(r["prompt_tokens"]), str(r["output_tokens"]),
             _ms(r["started_ms"], r["finished_ms"])]
            for r in runs
        ]  # fmt: skip
        print_table(rows)
    return 0
