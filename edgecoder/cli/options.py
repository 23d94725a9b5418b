"""Options shared by several commands, and turning flags into config overrides."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgecoder.config import Config, load_config
from edgecoder.config.loader import Override

__all__ = ("KEY_VARIABLE", "add_admin_options", "add_config_option", "config_from_args")

KEY_VARIABLE = "EDGECODER_API_KEY"
"""Where commands that use admin routes look for a key when ``--api-key`` is not given."""


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE`` (the main config file; default /etc/edgecoder/edgecoder.toml)."""
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="main config file (default: /etc/edgecoder/edgecoder.toml; conf.d/ beside it)",
    )


def add_admin_options(parser: argparse.ArgumentParser) -> None:
    """``--url``, ``--api-key`` and ``--json``: what every admin-route command takes."""
    parser.add_argument("--url", help="the node's client listener (default: from the config)")
    parser.add_argument(
        "--api-key", metavar="KEY", help=f"an admin API key (default: ${KEY_VARIABLE})"
    )
    parser.add_argument("--json", action="store_true", help="print the raw JSON")


def config_from_args(args: argparse.Namespace, overrides: list[Override] | None = None) -> Config:
    """Load the configuration for a command, with its flags applied last.

    :raises ConfigError: see :func:`edgecoder.config.load_config`.
    """
    extra = list(overrides or [])
    if getattr(args, "data_dir", None) is not None:
        extra.append(("node.data_dir", args.data_dir, "--data-dir"))
    return load_config(config_file=args.config, overrides=extra)
