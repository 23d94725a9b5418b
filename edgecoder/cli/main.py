"""The ``edgecoder`` entry point: parse, run the command's handler, map errors to exit codes.

Exit codes (docs/cli.md): 0 success, 1 the operation failed (storage faults included),
2 bad usage or configuration, 3 no local node answered, 130 interrupted. Every failure
is one line on stderr, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from edgecoder.cli.parser import EXIT_USAGE, build_parser
from edgecoder.errors import ConfigError, EdgeCoderError, NodeNotRunningError

__all__ = ("EXIT_FAILURE", "EXIT_NOT_RUNNING", "EXIT_USAGE", "build_parser", "main")

EXIT_FAILURE = 1
EXIT_NOT_RUNNING = 3


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``edgecoder`` command and return its exit code."""
    args = build_parser().parse_args(argv)
    try:
        # The handler imports the command's implementation now (edgecoder.cli.parser).
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
