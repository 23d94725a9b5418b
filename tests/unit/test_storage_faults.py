"""Storage faults on a real 1 MiB tmpfs: a full disk, a read-only data dir, I/O errors.

Each test fills the file system (or mounts it read-only), writes through the storage
layer, and checks what a user would see: the error class and its one-line message, no
temporary or partial file left behind, nothing acknowledged lost, and that the next write
succeeds once space is back.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgecoder.adapters.backends.gguf_import import materialize
from edgecoder.config import Config, SystemdEnv
from edgecoder.config.model import ApiConfig, MeshConfig, NodeConfig
from edgecoder.daemon import agent as agent_module
from edgecoder.daemon.agent import Agent
from edgecoder.errors import (
    DataDirError,
    DiskFullError,
    EdgeCoderError,
    ReadOnlyStorageError,
    StorageError,
    StorageIOError,
)
from edgecoder.inference.executor import BackendState
from edgecoder.storage.database import DB_FILE, Database, transaction
from edgecoder.storage.datadir import atomic_file, atomic_write, prepare_data_dir, snapshot_data_dir
from edgecoder.storage.faults import os_fault, sqlite_fault
from edgecoder.storage.keystore import KEY_FILE, load_or_create_identity
from edgecoder.storage.node_meta import register_start
from edgecoder.storage.replay_state import REPLAY_FILE, load_replay_state, save_replay_state
from tests.disks import fill, tiny_tmpfs
from tests.inprocess import ScriptedBackend

FULL = "is full (No space left on device)"
SQLITE_FULL = "is full (database or disk is full)"


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted afterwards."""
    with tiny_tmpfs(tmp_path) as mountpoint:
        yield mountpoint


@pytest.fixture
def read_only(tiny: Path, tmp_path: Path) -> Iterator[Path]:
    """A read-only view of ``tiny`` (a read-only bind mount); ``tiny`` stays writable."""
    view = tmp_path / "read-only"
    view.mkdir()
    subprocess.run(["mount", "--bind", str(tiny), str(view)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True)
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=True)


def leftovers(directory: Path) -> list[str]:
    """Temporary files a write left behind."""
    return sorted(n for n in os.listdir(directory) if n.endswith(".tmp"))


def test_atomic_write_on_a_full_disk_keeps_the_old_file_and_no_temp_file(tiny: Path) -> None:
    target = tiny / "state.json"
    atomic_write(target, b"old")
    filler = fill(tiny)
    with pytest.raises(DiskFullError) as caught:
        atomic_write(target, b"new" * 100_000)
    assert str(caught.value) == f"data dir {tiny} {FULL}: writing {target} failed"
    assert isinstance(caught.value.__cause__, OSError)
    assert target.read_bytes() == b"old"
    assert leftovers(tiny) == []
    filler.unlink()
    atomic_write(target, b"new" * 100_000)
    assert target.read_bytes() == b"new" * 100_000
    assert leftovers(tiny) == []


def test_a_copy_into_a_full_disk_leaves_no_partial_file(tiny: Path, tmp_path: Path) -> None:
    source = tmp_path / "model.gguf"
    source.write_bytes(b"GGUF" + b"w" * 2_000_000)  # larger than the whole tmpfs
    target = tiny / "models" / "model.gguf"
    target.parent.mkdir()
    with pytest.raises(DiskFullError, match=f"writing {target} failed"), atomic_file(target) as tmp:
        shutil.copyfile(source, tmp)
    assert os.listdir(target.parent) == []
    source.write_bytes(b"GGUF small")
    with atomic_file(target) as tmp:
        shutil.copyfile(source, tmp)
    assert target.read_bytes() == b"GGUF small"
    assert os.listdir(target.parent) == ["model.gguf"]
    with pytest.raises(FileNotFoundError), atomic_file(target) as tmp:  # not a storage fault
        shutil.copyfile(tmp_path / "missing", tmp)
    assert target.read_bytes() == b"GGUF small"


def test_importing_a_model_onto_a_full_disk_is_typed_and_leaves_nothing(
    tiny: Path, tmp_path: Path
) -> None:
    source = tmp_path / "big.gguf"
    source.write_bytes(b"GGUF" + b"w" * 2_000_000)  # larger than the whole tmpfs
    models = tiny / "models"
    with pytest.raises(DiskFullError, match="big"):
        materialize(source, models, "big:1")
    assert os.listdir(models) == []


def test_node_key_is_not_created_half_on_a_full_disk(tiny: Path) -> None:
    filler = fill(tiny)
    with pytest.raises(DiskFullError, match=f"writing {tiny / KEY_FILE} failed"):
        load_or_create_identity(tiny, None)
    assert sorted(os.listdir(tiny)) == ["filler"]
    filler.unlink()
    identity, created = load_or_create_identity(tiny, None)
    assert created
    again, created = load_or_create_identity(tiny, None)
    assert (again.node_id, created) == (identity.node_id, False)


def test_replay_state_on_a_full_disk_is_absent_not_partial(tiny: Path) -> None:
    entries = [("a" * 64, 10_000), ("b" * 64, 20_000)]
    filler = fill(tiny)
    with pytest.raises(DiskFullError, match=f"writing {tiny / REPLAY_FILE} failed"):
        save_replay_state(tiny, entries * 2000, 1)
    # No file: the next start treats the stop as a crash (safe), never reads half of one.
    assert sorted(os.listdir(tiny)) == ["filler"]
    assert load_replay_state(tiny) is None
    filler.unlink()
    save_replay_state(tiny, entries, 1)
    assert load_replay_state(tiny) == entries
    assert not (tiny / REPLAY_FILE).exists()


@pytest.mark.anyio
async def test_a_new_database_on_a_full_disk_is_refused_and_removed(tiny: Path) -> None:
    filler = fill(tiny)
    with pytest.raises(DiskFullError) as caught:
        await Database.open(tiny)
    assert str(caught.value).startswith(f"data dir {tiny} is full (")
    assert str(caught.value).endswith(f"opening {tiny / DB_FILE} failed")
    assert sorted(os.listdir(tiny)) == ["filler"]
    filler.unlink()
    db = await Database.open(tiny)
    await db.close()


def _blob_table(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")


def _insert(size: int) -> Callable[[sqlite3.Connection], sqlite3.Cursor]:
    return lambda conn: conn.execute("INSERT INTO blobs (data) VALUES (?)", (b"x" * size,))


def _count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM blobs").fetchone()[0])


@pytest.mark.anyio
async def test_database_write_on_a_full_disk_fails_typed_then_recovers(tiny: Path) -> None:
    db = await Database.open(tiny)
    try:
        await db.run(_blob_table)
        await db.run(_insert(1000))  # acknowledged before the disk fills
        filler = fill(tiny)
        with pytest.raises(DiskFullError) as caught:
            await db.run(_insert(200_000))
        assert str(caught.value) == (
            f"data dir {tiny} {SQLITE_FULL}: a write to {tiny / DB_FILE} failed"
        )
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        # A transaction whose commit cannot be written is refused, not acknowledged...
        with pytest.raises(DiskFullError):
            await db.run(lambda c: register_start(c, "node-a", 1, "0.1.0", True))
        # ...and leaves nothing open: reads still work on the same connection.
        assert not await db.run(lambda c: c.in_transaction)
        assert await db.run(_count) == 1
        filler.unlink()
        # No sticky failure: the same connection writes again once space is back.
        assert await db.run(lambda c: register_start(c, "node-a", 2, "0.1.0", True)) == 1
        await db.run(_insert(200_000))
        assert await db.run(_count) == 2
    finally:
        await db.close()
    db = await Database.open(tiny)
    try:
        assert await db.run(_count) == 2
    finally:
        await db.close()


@pytest.mark.anyio
async def test_a_transaction_that_fills_the_disk_is_all_or_nothing(tiny: Path) -> None:
    db = await Database.open(tiny)
    try:
        await db.run(_blob_table)

        def many(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                for _ in range(100):
                    conn.execute("INSERT INTO blobs (data) VALUES (?)", (b"y" * 20_000,))

        with pytest.raises(DiskFullError):
            await db.run(many)
        assert await db.run(_count) == 0
        assert not await db.run(lambda c: c.in_transaction)
        await db.run(_insert(10))
        assert await db.run(_count) == 1
    finally:
        await db.close()


@pytest.mark.anyio
async def test_close_on_a_full_disk_closes_and_loses_nothing(tiny: Path) -> None:
    db = await Database.open(tiny)
    await db.run(_blob_table)
    for _ in range(5):
        await db.run(_insert(30_000))
    filler = fill(tiny)
    await db.close()  # the checkpoint may fail; the close may not
    with pytest.raises(StorageError, match="closed"):
        await db.run(_count)
    filler.unlink()
    db = await Database.open(tiny)
    try:
        assert await db.run(_count) == 5
    finally:
        await db.close()
    assert not (tiny / f"{DB_FILE}-wal").exists()


@pytest.mark.anyio
async def test_read_only_data_dir(tiny: Path, read_only: Path) -> None:
    db = await Database.open(tiny)
    await db.run(_blob_table)
    await db.close()
    with pytest.raises(DataDirError) as refused:
        prepare_data_dir(read_only)
    assert str(refused.value) == f"data dir {read_only} is read-only (Read-only file system)"
    with pytest.raises(DataDirError, match=r"cannot be created: .* is read-only"):
        prepare_data_dir(read_only / "sub")
    with pytest.raises(ReadOnlyStorageError) as caught:
        atomic_write(read_only / KEY_FILE, b"key")
    assert str(caught.value) == (
        f"data dir {read_only} is read-only (Read-only file system): "
        f"writing {read_only / KEY_FILE} failed"
    )
    with pytest.raises(ReadOnlyStorageError, match=f"data dir {read_only} is read-only"):
        await Database.open(read_only)
    assert sorted(os.listdir(tiny)) == [DB_FILE]


def test_sqlite_readonly_is_typed(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    sqlite3.connect(path).close()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        with pytest.raises(sqlite3.OperationalError) as raised:
            conn.execute("CREATE TABLE t (x)")
    finally:
        conn.close()
    fault = sqlite_fault(raised.value, path, "a write to")
    assert isinstance(fault, ReadOnlyStorageError)
    assert str(fault) == (
        f"data dir {tmp_path} is read-only (attempt to write a readonly database): "
        f"a write to {path} failed"
    )


def test_io_errors_and_other_failures_are_typed(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    fault = os_fault(OSError(errno.EIO, os.strerror(errno.EIO)), path, "writing")
    assert type(fault) is StorageIOError
    assert (
        str(fault)
        == f"I/O error in data dir {tmp_path} (Input/output error): writing {path} failed"
    )
    assert type(os_fault(OSError(errno.EDQUOT, "Disk quota exceeded"), path, "writing")) is (
        DiskFullError
    )
    denied = os_fault(OSError(errno.EACCES, "Permission denied"), path, "writing")
    assert type(denied) is ReadOnlyStorageError
    assert str(denied).startswith(f"data dir {tmp_path} is not writable (Permission denied)")
    other = os_fault(OSError(errno.ENAMETOOLONG, "File name too long"), path, "writing")
    assert type(other) is StorageError
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x UNIQUE)")
    with pytest.raises(sqlite3.IntegrityError) as raised:
        conn.execute("INSERT INTO t VALUES (1), (1)")
    conn.close()
    assert sqlite_fault(raised.value, path, "a write to") is None  # not a storage fault


@pytest.mark.anyio
async def test_constraint_errors_stay_plain_storage_errors(tmp_path: Path) -> None:
    db = await Database.open(tmp_path)
    try:
        await db.run(lambda c: c.execute("CREATE TABLE t (x UNIQUE)"))
        await db.run(lambda c: c.execute("INSERT INTO t VALUES (1)"))
        with pytest.raises(StorageError) as caught:
            await db.run(lambda c: c.execute("INSERT INTO t VALUES (1)"))
        assert type(caught.value) is StorageError
        assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
    finally:
        await db.close()


def test_undo_removes_a_new_data_dir_and_the_parents_made_for_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "a" / "b" / "data"
    before = snapshot_data_dir(data_dir)
    prepare_data_dir(data_dir)
    atomic_write(data_dir / KEY_FILE, b"key")
    assert before.undo() == [tmp_path / "a"]
    assert sorted(os.listdir(tmp_path)) == []


def test_undo_in_an_existing_data_dir_removes_only_what_is_new(tmp_path: Path) -> None:
    (tmp_path / DB_FILE).write_bytes(b"old database")
    (tmp_path / "notes").write_text("the operator's")
    before = snapshot_data_dir(tmp_path)
    atomic_write(tmp_path / KEY_FILE, b"key")
    (tmp_path / f"{DB_FILE}-wal").write_bytes(b"committed pages")  # of the old database
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.gguf").write_bytes(b"model")
    removed = before.undo()
    assert sorted(removed) == [tmp_path / "models", tmp_path / KEY_FILE]
    assert sorted(os.listdir(tmp_path)) == [DB_FILE, f"{DB_FILE}-wal", "notes"]
    assert (tmp_path / DB_FILE).read_bytes() == b"old database"


class _HungUpBackend(ScriptedBackend):
    closed = False

    async def close(self) -> None:
        self.closed = True
        raise RuntimeError("backend hung up")


@pytest.mark.anyio
async def test_stop_runs_every_step_when_some_fail_and_closes_the_database(
    tiny: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A whole node in this process, its data dir on the tiny disk, its backend failing to
    # close; the disk fills while it serves, then it is asked to stop.
    backend = _HungUpBackend()

    async def hung_up(*args: object) -> tuple[_HungUpBackend, BackendState]:
        return backend, BackendState("scripted", "scripted", "ready", "scripted")

    monkeypatch.setattr(agent_module, "start_backend", hung_up)
    config = Config(
        node=NodeConfig(data_dir=tiny),
        api=ApiConfig(bind="127.0.0.1", port=0),
        mesh=MeshConfig(bind="127.0.0.1", port=0, mdns=False, calibrate=False),
    )
    agent = Agent(config, SystemdEnv())
    with caplog.at_level(logging.INFO):
        running = asyncio.create_task(agent.run())
        serving = asyncio.create_task(agent.serving.wait())
        await asyncio.wait({running, serving}, return_when=asyncio.FIRST_COMPLETED)
        assert serving.done(), running.exception()
        fill(tiny)
        agent.request_stop()
        with pytest.raises(EdgeCoderError) as raised:
            await running
    # The backend failed to close, the replay state could not be written: the database
    # was still closed, and the first failure is what the CLI prints.
    assert backend.closed
    assert str(raised.value) == (
        "stop: closing the inference backend failed: RuntimeError('backend hung up')"
    )
    failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 2, failures
    assert failures[0].startswith("stop: closing the inference backend failed: backend hung up")
    assert failures[1].startswith(f"stop: saving the replay state failed: data dir {tiny} {FULL}")
    assert failures[1].endswith("(it refuses requests signed before it)")
    assert f"database {tiny / DB_FILE} closed" in caplog.text
    assert leftovers(tiny) == []
    assert not (tiny / REPLAY_FILE).exists()


def test_undo_leaves_a_data_dir_path_that_is_a_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_text("not a directory")
    before = snapshot_data_dir(path)
    with pytest.raises(DataDirError, match="is not a directory"):
        prepare_data_dir(path)
    assert before.undo() == []
    assert path.read_text() == "not a directory"
