"""The registry of model files served by the embedded backend (table ``models``).

Model files live in ``<data dir>/models/``; a row records what was learnt from the file
when it was imported, so listing models never opens them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

__all__ = ("ModelEntry", "delete_model", "get_model", "list_models", "put_model")


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One imported model file."""

    name: str
    file: str
    """File name inside the models directory."""
    sha256: str
    size_bytes: int
    architecture: str
    context_length: int
    """The context the model was trained for (the runtime may use less)."""
    parameter_size: str
    quantization: str
    chat_template: str
    fim_tokens: str
    """``prefix|suffix|middle`` token texts, or empty when the model has none."""
    added_ms: int


_COLUMNS = (
    "name, file, sha256, size_bytes, architecture, context_length, parameter_size, "
    "quantization, chat_template, fim_tokens, added_ms"
)


def _entry(row: tuple[object, ...]) -> ModelEntry:
    return ModelEntry(*row)  # type: ignore[arg-type]


def put_model(conn: sqlite3.Connection, entry: ModelEntry) -> None:
    """Add or replace a model row."""
    conn.execute(
        f"INSERT OR REPLACE INTO models ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
        (
            entry.name,
            entry.file,
            entry.sha256,
            entry.size_bytes,
            entry.architecture,
            entry.context_length,
            entry.parameter_size,
            entry.quantization,
            entry.chat_template,
            entry.fim_tokens,
            entry.added_ms,
        ),
    )


def get_model(conn: sqlite3.Connection, name: str) -> ModelEntry | None:
    """The row of one model, or None."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM models WHERE name = ?", (name,)).fetchone()  # noqa: S608
    return None if row is None else _entry(row)


def list_models(conn: sqlite3.Connection) -> list[ModelEntry]:
    """Every model row, by name."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM models ORDER BY name").fetchall()  # noqa: S608
    return [_entry(row) for row in rows]


def delete_model(conn: sqlite3.Connection, name: str) -> ModelEntry | None:
    """Remove a model row; return what it was, or None if there was none."""
    entry = get_model(conn, name)
    if entry is not None:
        conn.execute("DELETE FROM models WHERE name = ?", (name,))
    return entry
