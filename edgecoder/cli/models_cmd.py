"""``edgecoder models``: the GGUF models of the embedded backend."""

from __future__ import annotations

import argparse
import json

from edgecoder.adapters.backends.llamacpp import import_model
from edgecoder.cli.local_db import run_with_database
from edgecoder.cli.options import config_from_args
from edgecoder.storage import models as registry

__all__ = ("add", "list_models")


def add(args: argparse.Namespace) -> int:
    """Import a GGUF file into the data dir and register it."""
    config = config_from_args(args)
    source = args.file.expanduser().absolute()
    entry = run_with_database(
        config, lambda db: import_model(db, config.node.data_dir, source, args.name)
    )
    print(
        f"imported {entry.name}: {entry.architecture} {entry.parameter_size} {entry.quantization}, "
        f"context {entry.context_length}, {entry.size_bytes} bytes, sha256 {entry.sha256[:12]}"
    )
    return 0


def list_models(args: argparse.Namespace) -> int:
    """Print the registered models."""
    config = config_from_args(args)
    entries = run_with_database(config, lambda db: db.run(registry.list_models))
    if args.json:
        fields = ("name", "file", "sha256", "size_bytes", "architecture", "context_length",
                  "parameter_size", "quantization")  # fmt: skip
        print(json.dumps([{f: getattr(e, f) for f in fields} for e in entries], indent=2))
        return 0
    print(f"{'NAME':<28} {'ARCH':<10} {'PARAMS':<8} {'QUANT':<8} {'CONTEXT':>8} SIZE")
    for e in entries:
        size = f"{e.size_bytes / 1e6:.0f} MB"
        print(f"{e.name:<28} {e.architecture:<10} {e.parameter_size:<8} {e.quantization:<8} "
              f"{e.context_length:>8} {size}")  # fmt: skip
    return 0
