"""``edgecoder models``: the GGUF models of the embedded backend."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edgecoder.cli.local_db import run_with_database
from edgecoder.cli.options import add_config_option, config_from_args
from edgecoder.storage import models as registry

__all__ = ("add", "add_parser", "list_models")


def add_parser(commands: Any) -> None:
    """Register ``models`` and its subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "models", help="models of the embedded backend"
    )
    models = parser.add_subparsers(
        dest="models_command", metavar="ACTION", parser_class=type(parser)
    )
    models.required = True
    add_parser_ = models.add_parser("add", help="import a GGUF model file")
    add_parser_.add_argument("file", type=Path, help="the .gguf file")
    add_parser_.add_argument("--name", help="name to serve it under (default: from the file name)")
    add_parser_.set_defaults(handler=add)
    list_parser = models.add_parser("list", help="list imported models")
    list_parser.add_argument("--json", action="store_true", help="print JSON")
    list_parser.set_defaults(handler=list_models)
    for sub in (add_parser_, list_parser):
        add_config_option(sub)
        sub.add_argument("--data-dir", metavar="DIR", help="the node's data directory")


def add(args: argparse.Namespace) -> int:
    """Import a GGUF file into the data dir and register it."""
    from edgecoder.adapters.backends.llamacpp import import_model

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
