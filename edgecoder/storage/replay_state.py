"""Keeping the replay cache across restarts, so a restart never reopens the replay window.

On a clean stop the unexpired entries are written to ``replay.json`` (atomically); the
next start loads them and deletes the file. A start that finds no file (first start, or
after a crash) cannot know what was accepted before, so it refuses every request signed
before the moment it started: peers simply sign again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from edgecoder.storage.datadir import atomic_write, remove_file
from edgecoder.storage.faults import os_fault

__all__ = ("REPLAY_FILE", "load_replay_state", "save_replay_state")

log = logging.getLogger(__name__)
REPLAY_FILE = "replay.json"


def save_replay_state(data_dir: Path, entries: list[tuple[str, int]], saved_ms: int) -> None:
    """Write the cache's unexpired entries on a clean stop.

    :raises StorageError: the file could not be written (see
        :func:`~edgecoder.storage.datadir.atomic_write`); none is left behind, so the next
        start treats this stop as a crash.
    """
    document = {"format": "edgecoder-replay", "version": 1, "saved_ms": saved_ms,
                "entries": [[key, expires] for key, expires in entries]}  # fmt: skip
    atomic_write(data_dir / REPLAY_FILE, json.dumps(document).encode(), mode=0o600)


def load_replay_state(data_dir: Path) -> list[tuple[str, int]] | None:
    """The entries saved by the last clean stop (and forget them), or None after a crash.

    :raises StorageError: the file cannot be read or removed. Removing it is not optional:
        left in place, it would make a later crash look like this clean stop.
    """
    path = data_dir / REPLAY_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise os_fault(exc, path, "reading") from exc
    try:
        document = json.loads(raw)
    except ValueError:
        log.warning("replay state %s is corrupt; treating the last stop as a crash", path)
        document = None
    remove_file(path)
    if not isinstance(document, dict):
        return None
    if document.get("format") != "edgecoder-replay" or document.get("version") != 1:
        return None
    return [(str(key), int(expires)) for key, expires in document.get("entries", [])]
