"""Argument parsing, dispatch, and the one place errors become exit codes.

Exit codes (docs/cli.md): 0 success, 1 the operation failed (storage faults included),
2 bad usage or configuration, 3 no local node answered, 130 interrupted. Every failure
is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from edgecoder import __version__
from edgecoder.cli import (
    agent_cmd,
    credits_cmd,
    keys_cmd,
    mesh_cmd,
    models_cmd,
    peers_cmd,
    setup_cmd,
    status_cmd,
    tasks_cmd,
)
from edgecoder.errors import ConfigError, EdgeCoderError, NodeNotRunningError

__all__ = ("EXIT_FAILURE", "EXIT_NOT_RUNNING", "EXIT_USAGE", "build_parser", "main")

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full ``edgecoder`` command line."""
    parser = _Parser(
        prog="edgecoder",
        description="EdgeCoder: AI coding assistance from a mesh of office machines.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    agent_cmd.add_parser(commands)
    commands.add_parser("version", help="print the version and which core is in use")
    status_cmd.add_parser(commands)
    keys_cmd.add_parser(commands)
    models_cmd.add_parser(commands)
    mesh_cmd.add_parser(commands)
    peers_cmd.add_parser(commands)
    tasks_cmd.add_parser(commands)
    setup_cmd.add_parser(commands)
    credits_cmd.add_parser(commands)
    return parser


def _version() -> int:
    from edgecoder.speedups import FALLBACK_REASON, USING_EXTENSIONS

    core = "compiled (Cython)" if USING_EXTENSIONS else f"pure Python ({FALLBACK_REASON})"
    print(f"edgecoder {__version__}\ncore: {core}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``edgecoder`` command and return its exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "version":
            return _version()
        code: int = args.handler(args)
        return code
    except ConfigError as exc:
        _fail(str(exc))
        return EXIT_USAGE
    except NodeNotRunningError as exc:
        _fail(str(exc))
        return EXIT_NOT_RUNNING
    except EdgeCoderError as exc:
        _fail(str(exc))
        return EXIT_FAILURE
    except OSError as exc:
        # A safety net: storage and listener failures are typed where they happen, but a
        # file the OS refuses anywhere else still gets one line, not a traceback.
        _fail(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _fail(message: str) -> None:
    print(f"edgecoder: error: {message}", file=sys.stderr, flush=True)
