"""Rows of the task history as typed values: a task this node offered, a run it did for a peer."""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ("RunRow", "TaskRow")


@dataclass(frozen=True, slots=True)
class TaskRow:
    """A task this node offered to the mesh (table ``tasks``)."""

    task_id: str
    kind: str
    """``chat`` or ``complete``."""
    model: str
    prompt_est: int
    max_tokens: int
    state: str
    worker: str | None
    attempts: int
    claims: int
    output_tokens: int
    created_ms: int
    first_token_ms: int | None
    finished_ms: int | None
    error: str | None
    receipt: str | None
    """How far the last attempt's receipt got: None, ``signed`` or ``countersigned``."""

    def as_json(self) -> dict[str, object]:
        """The row as JSON data (``/admin/tasks``), in column order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class RunRow:
    """A granted attempt this node ran for a peer (table ``task_runs``)."""

    task_id: str
    attempt: int
    origin: str
    model: str
    state: str
    prompt_tokens: int
    output_tokens: int
    started_ms: int
    finished_ms: int | None

    def as_json(self) -> dict[str, object]:
        """The row as JSON data (``/admin/tasks``), in column order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
