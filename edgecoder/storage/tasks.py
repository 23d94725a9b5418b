"""Mesh task records: tasks this node offered (``tasks``), runs it did for peers
(``task_runs``) and the receipts of both (``receipts``).

Every write commits on its own (``synchronous=FULL``): a task is durable from the moment
it is accepted, a receipt from the moment it is signed.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from edgecoder.storage.task_rows import RunRow, TaskRow
from edgecoder.wire import canonical

__all__ = (
    "FINAL_STATES",
    "finish_run",
    "finish_task",
    "get_receipt",
    "get_run",
    "insert_run",
    "insert_task",
    "interrupt_unfinished",
    "recent_runs",
    "recent_tasks",
    "refuse_receipt",
    "store_receipt",
    "update_task",
    "waiting_receipts",
)

FINAL_STATES = ("done", "failed", "cancelled", "interrupted")
_TASK_COLUMNS = ("task_id", "kind", "model", "prompt_est", "max_tokens", "state", "worker",
                 "attempts", "claims", "output_tokens", "created_ms", "first_token_ms",
                 "finished_ms", "error")  # fmt: skip
_RUN_COLUMNS = ("task_id", "attempt", "origin", "model", "state", "prompt_tokens",
                "output_tokens", "started_ms", "finished_ms")  # fmt: skip
_UPDATABLE = {"state", "worker", "attempts", "claims", "output_tokens", "first_token_ms"}


def insert_task(
    conn: sqlite3.Connection, task_id: str, kind: str, model: str, prompt_est: int,
    max_tokens: int, now_ms: int,
) -> None:  # fmt: skip
    """Record a task the moment this node accepts it."""
    conn.execute(
        "INSERT INTO tasks (task_id, kind, model, prompt_est, max_tokens, state, attempts,"
        " claims, output_tokens, created_ms) VALUES (?, ?, ?, ?, ?, 'offered', 0, 0, 0, ?)",
        (task_id, kind, model, prompt_est, max_tokens, now_ms),
    )


def update_task(conn: sqlite3.Connection, task_id: str, **fields: Any) -> None:
    """Change some of a task's progress columns."""
    unknown = set(fields) - _UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    assignments = ", ".join(f"{name} = ?" for name in fields)
    conn.execute(
        f"UPDATE tasks SET {assignments} WHERE task_id = ?",  # noqa: S608 - fixed column names
        (*fields.values(), task_id),
    )


def finish_task(
    conn: sqlite3.Connection, task_id: str, state: str, now_ms: int, *,
    worker: str | None, attempts: int, claims: int, output_tokens: int, error: str | None,
) -> None:  # fmt: skip
    """Record how a task ended."""
    conn.execute(
        "UPDATE tasks SET state = ?, worker = ?, attempts = ?, claims = ?, output_tokens = ?,"
        " finished_ms = ?, error = ? WHERE task_id = ?",
        (state, worker, attempts, claims, output_tokens, now_ms, error, task_id),
    )


def interrupt_unfinished(conn: sqlite3.Connection, now_ms: int) -> int:
    """Mark tasks and runs a previous process left unfinished as ``interrupted``.

    Their clients' connections died with that process, so none can be resumed; each keeps
    its record (and any receipt) for the operator and the ledger.
    """
    finals = ", ".join(f"'{s}'" for s in FINAL_STATES)
    count = 0
    for table in ("tasks", "task_runs"):
        count += conn.execute(
            f"UPDATE {table} SET state = 'interrupted', finished_ms = ?"  # noqa: S608
            f" WHERE state NOT IN ({finals})",
            (now_ms,),
        ).rowcount
    return count


def recent_tasks(conn: sqlite3.Connection, limit: int) -> list[TaskRow]:
    """The newest tasks this node offered, newest first; ``receipt`` says how far the
    receipt of the last attempt got (None, ``signed`` by this node, ``countersigned``, or
    ``refused`` for good by the worker)."""
    columns = ", ".join(f"t.{name}" for name in _TASK_COLUMNS)
    rows = conn.execute(
        f"SELECT {columns}, r.worker_sig, r.refused FROM tasks t LEFT JOIN receipts r"  # noqa: S608
        " ON r.task_id = t.task_id AND r.attempt = t.attempts"
        " ORDER BY t.created_ms DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [
        TaskRow(**dict(zip(_TASK_COLUMNS, row[:-2], strict=True)),
                receipt=_receipt_state(row[-2], row[-1]))
        for row in rows
    ]  # fmt: skip


def _receipt_state(worker_sig: str | None, refused: str | None) -> str | None:
    if worker_sig is None:
        return None
    if worker_sig:
        return "countersigned"
    return "refused" if refused else "signed"


def insert_run(
    conn: sqlite3.Connection, task_id: str, attempt: int, origin: str, model: str, now_ms: int
) -> None:
    """Record that this node starts running a granted attempt for a peer.

    :raises sqlite3.IntegrityError: this attempt already ran here (it never runs twice).
    """
    conn.execute(
        "INSERT INTO task_runs (task_id, attempt, origin, model, state, prompt_tokens,"
        " output_tokens, started_ms) VALUES (?, ?, ?, ?, 'running', 0, 0, ?)",
        (task_id, attempt, origin, model, now_ms),
    )


def finish_run(
    conn: sqlite3.Connection, task_id: str, attempt: int, state: str, prompt_tokens: int,
    output_tokens: int, now_ms: int,
) -> None:  # fmt: skip
    """Record how a run for a peer ended; once (a refused duplicate of an attempt that ran
    here never changes that run's record)."""
    conn.execute(
        "UPDATE task_runs SET state = ?, prompt_tokens = ?, output_tokens = ?, finished_ms = ?"
        " WHERE task_id = ? AND attempt = ? AND state = 'running'",
        (state, prompt_tokens, output_tokens, now_ms, task_id, attempt),
    )


def get_run(conn: sqlite3.Connection, task_id: str, attempt: int) -> RunRow | None:
    """One run this node did for a peer."""
    row = conn.execute(
        f"SELECT {', '.join(_RUN_COLUMNS)} FROM task_runs WHERE task_id = ? AND attempt = ?",  # noqa: S608
        (task_id, attempt),
    ).fetchone()
    return None if row is None else RunRow(**dict(zip(_RUN_COLUMNS, row, strict=True)))


def recent_runs(conn: sqlite3.Connection, limit: int) -> list[RunRow]:
    """The newest runs this node did for peers, newest first."""
    rows = conn.execute(
        f"SELECT {', '.join(_RUN_COLUMNS)} FROM task_runs ORDER BY started_ms DESC LIMIT ?",  # noqa: S608
        (limit,),
    ).fetchall()
    return [RunRow(**dict(zip(_RUN_COLUMNS, row, strict=True))) for row in rows]


def store_receipt(
    conn: sqlite3.Connection, role: str, body: dict[str, Any], origin_sig: str, worker_sig: str,
    now_ms: int,
) -> None:  # fmt: skip
    """Keep a receipt (replacing this node's earlier copy, which had fewer signatures)."""
    conn.execute(
        "INSERT INTO receipts (task_id, attempt, role, body, origin_sig, worker_sig, stored_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task_id, attempt) DO UPDATE SET"
        " worker_sig = excluded.worker_sig, stored_ms = excluded.stored_ms",
        (body["task_id"], body["attempt"], role, canonical.encode(body).decode(),
         origin_sig, worker_sig, now_ms),
    )  # fmt: skip


def waiting_receipts(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Receipts this node signed as origin that still wait for the worker's
    countersignature (none refused for good), oldest first: ``{body, origin_sig}``."""
    rows = conn.execute(
        "SELECT body, origin_sig FROM receipts WHERE worker_sig = '' AND refused = ''"
        " AND role = 'origin' ORDER BY stored_ms, task_id"
    ).fetchall()
    return [{"body": json.loads(body), "origin_sig": sig} for body, sig in rows]


def refuse_receipt(conn: sqlite3.Connection, task_id: str, attempt: int, code: str) -> None:
    """Record that the worker refused a receipt for good (``code``): it is not sent again."""
    conn.execute(
        "UPDATE receipts SET refused = ? WHERE task_id = ? AND attempt = ?",
        (code, task_id, attempt),
    )


def get_receipt(conn: sqlite3.Connection, task_id: str) -> dict[str, Any] | None:
    """The latest receipt held for a task: ``{body, origin_sig, worker_sig, role,
    refused}`` (``refused``: the code the worker refused it with for good, or empty)."""
    row = conn.execute(
        "SELECT body, origin_sig, worker_sig, role, refused FROM receipts WHERE task_id = ?"
        " ORDER BY attempt DESC LIMIT 1",
        (task_id,),
    ).fetchone()
    if row is None:
        return None
    return {"body": json.loads(row[0]), "origin_sig": row[1], "worker_sig": row[2],
            "role": row[3], "refused": row[4]}  # fmt: skip
