"""A model file described once, beside it (the appliance image's default model): the
description says what inspecting the file says, the backend's first start registers the
default model from it, and a description that no longer fits its file is ignored."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

import pytest

from edgecoder.adapters.backends.gguf_import import (
    DEFAULT_MODEL,
    DESCRIPTION_SUFFIX,
    MODELS_DIR,
    described_entry,
    inspect_gguf,
    write_description,
)
from edgecoder.adapters.backends.llamacpp import LlamaCppBackend
from edgecoder.storage import models as registry
from edgecoder.storage.database import Database
from tests.integration.nodes import share_default_model

pytestmark = [pytest.mark.model, pytest.mark.anyio]

FILE = DEFAULT_MODEL.replace(":", "-") + ".gguf"


def _model_in(directory: Path) -> Path:
    """The shared default model hard-linked into ``directory`` (no 250 MB copy)."""
    share_default_model(directory)
    return directory / MODELS_DIR / FILE


def test_a_description_says_what_inspecting_the_file_says(tmp_path: Path) -> None:
    model = _model_in(tmp_path)
    written = write_description(model)
    assert written == model.with_name(FILE + DESCRIPTION_SUFFIX)
    # Stable bytes: a second description of the same file is the same file.
    first = written.read_bytes()
    assert write_description(model).read_bytes() == first
    described = described_entry(model, DEFAULT_MODEL, FILE)
    assert described is not None
    inspected = inspect_gguf(model, DEFAULT_MODEL, FILE)
    assert dataclasses.replace(described, added_ms=0) == dataclasses.replace(inspected, added_ms=0)


def test_a_link_is_described_by_its_real_files_description(tmp_path: Path) -> None:
    # The image links the data directory's model to /opt's file, described beside it.
    model = _model_in(tmp_path / "image")
    write_description(model)
    link = tmp_path / "data" / FILE
    link.parent.mkdir()
    link.symlink_to(model)
    described = described_entry(link, DEFAULT_MODEL, FILE)
    assert described is not None
    assert (
        described.sha256 == json.loads(Path(f"{model}{DESCRIPTION_SUFFIX}").read_text())["sha256"]
    )


def test_a_description_that_does_not_fit_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = _model_in(tmp_path)
    assert described_entry(model, DEFAULT_MODEL, FILE) is None  # none written
    description = write_description(model)
    fields = json.loads(description.read_text())
    description.write_text(json.dumps({**fields, "size_bytes": fields["size_bytes"] + 1}))
    with caplog.at_level(logging.WARNING):
        assert described_entry(model, DEFAULT_MODEL, FILE) is None
    assert "sizes differ" in caplog.text
    description.write_text("{not json")
    assert described_entry(model, DEFAULT_MODEL, FILE) is None
    description.write_text(json.dumps({"size_bytes": fields["size_bytes"]}))
    assert described_entry(model, DEFAULT_MODEL, FILE) is None


async def test_the_first_start_registers_the_default_model_from_its_description(
    tmp_path: Path,
) -> None:
    model = _model_in(tmp_path / "image")
    description = write_description(model)
    # A mark only the description carries: the entry must come from it, not the file.
    fields = json.loads(description.read_text())
    description.write_text(json.dumps({**fields, "parameter_size": "described"}))
    data = tmp_path / "data"
    (data / MODELS_DIR).mkdir(parents=True)
    os.symlink(model, data / MODELS_DIR / FILE)
    database = await Database.open(data)
    backend = LlamaCppBackend(database, data, context_length=2048, threads=0, slots=1,
                              max_queue=1)  # fmt: skip
    try:
        await backend.start()
        entry = await database.run(lambda c: registry.get_model(c, DEFAULT_MODEL))
        assert entry is not None
        assert (entry.parameter_size, entry.sha256, entry.file) == (
            "described", fields["sha256"], FILE)  # fmt: skip
    finally:
        await backend.close()
        await database.close()
