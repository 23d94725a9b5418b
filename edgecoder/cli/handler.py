"""A command's implementation named by module and function, imported when the command runs.

The parsers (:mod:`edgecoder.cli.parser`, :mod:`edgecoder.cli.ctl`) name every command's
handler this way, so building them imports no implementation: ``edgecoder keys init``
at first boot loads the node-key code and nothing of the daemon, the web stack or the
ledger that other commands need.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ("Handler",)


@dataclass(frozen=True, slots=True)
class Handler:
    """``function`` in ``edgecoder.cli.<module>``, imported on first use."""

    module: str
    function: str

    def resolve(self) -> Callable[..., Any]:
        """Import the module and return the function.

        :raises ImportError: the module does not exist (a bug in the parser, not input).
        :raises AttributeError: the module has no such function (likewise).
        """
        found: Callable[..., Any] = getattr(
            importlib.import_module(f"edgecoder.cli.{self.module}"), self.function
        )
        return found

    def __call__(self, args: argparse.Namespace) -> int:
        """Run the command with its parsed arguments; its exit code."""
        code: int = self.resolve()(args)
        return code
