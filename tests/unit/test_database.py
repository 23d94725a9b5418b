"""The node database: migrations, its binding to one node key, and off-loop access."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from edgecoder.errors import StorageError
from edgecoder.storage import tasks as task_store
from edgecoder.storage.database import DB_FILE, Database
from edgecoder.storage.migrations import MIGRATIONS, apply_migrations, schema_version
from edgecoder.storage.node_meta import register_start

pytestmark = pytest.mark.anyio


async def test_open_migrates_and_runs_off_the_loop_thread(tmp_path: Path) -> None:
    db = await Database.open(tmp_path)
    try:
        version = await db.run(schema_version)
        assert version == MIGRATIONS[-1].version
        thread = await db.run(lambda conn: threading.current_thread().name)
        assert thread.startswith("edgecoder-db")
        assert thread != threading.current_thread().name
        mode = await db.run(lambda conn: conn.execute("PRAGMA journal_mode").fetchone()[0])
        assert mode == "wal"
    finally:
        await db.close()
    with pytest.raises(StorageError, match="closed"):
        await db.run(schema_version)


async def test_starts_are_counted_and_bound_to_one_node(tmp_path: Path) -> None:
    db = await Database.open(tmp_path)
    try:
        assert await db.run(lambda c: register_start(c, "node-a", 1, "0.1.0", True)) == 1
        assert await db.run(lambda c: register_start(c, "node-a", 2, "0.1.0", False)) == 2
        with pytest.raises(StorageError, match="belongs to node node-a"):
            await db.run(lambda c: register_start(c, "node-b", 3, "0.1.0", True))
        # The refused start left no trace.
        count = await db.run(lambda c: c.execute("SELECT COUNT(*) FROM node_starts").fetchone()[0])
        assert count == 2
    finally:
        await db.close()


async def test_reopen_keeps_data(tmp_path: Path) -> None:
    db = await Database.open(tmp_path)
    await db.run(lambda c: register_start(c, "node-a", 1, "0.1.0", True))
    await db.close()
    db = await Database.open(tmp_path)
    try:
        assert await db.run(lambda c: register_start(c, "node-a", 2, "0.1.0", True)) == 2
    finally:
        await db.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DB_FILE)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(StorageError, match="newer than this EdgeCoder"):
        await Database.open(tmp_path)


async def test_garbage_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / DB_FILE).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="cannot open database"):
        await Database.open(tmp_path)


def test_failed_migration_leaves_the_old_version(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DB_FILE, isolation_level=None)
    conn.execute("CREATE TABLE node_meta (x)")  # collides with migration 1
    with pytest.raises(sqlite3.OperationalError):
        apply_migrations(conn)
    assert schema_version(conn) == 0
    assert (
        conn.execute("SELECT name FROM sqlite_master WHERE name='node_starts'").fetchone() is None
    )


async def test_a_run_records_its_end_once(tmp_path: Path) -> None:
    # A duplicate grant of an attempt that ran here is refused at its insert; its clean-up
    # must not turn the finished run's record (what a receipt is checked against) into a
    # failure.
    database = await Database.open(tmp_path)
    try:
        await database.run(lambda c: task_store.insert_run(c, "t", 1, "origin", "m", 10))
        await database.run(lambda c: task_store.finish_run(c, "t", 1, "done", 5, 7, 20))
        with pytest.raises(StorageError):
            await database.run(lambda c: task_store.insert_run(c, "t", 1, "origin", "m", 30))
        await database.run(lambda c: task_store.finish_run(c, "t", 1, "failed", 0, 0, 40))
        run = await database.run(lambda c: task_store.get_run(c, "t", 1))
        assert run is not None
        assert (run.state, run.prompt_tokens, run.output_tokens, run.finished_ms) == (
            "done", 5, 7, 20)  # fmt: skip
    finally:
        await database.close()
