"""``edgecoder version``: the version, and which core (compiled or pure Python) is in use."""

from __future__ import annotations

import argparse

from edgecoder import __version__
from edgecoder.speedups import FALLBACK_REASON, USING_EXTENSIONS

__all__ = ("run",)


def run(args: argparse.Namespace) -> int:
    """Print the version and the core; always 0."""
    core = "compiled (Cython)" if USING_EXTENSIONS else f"pure Python ({FALLBACK_REASON})"
    print(f"edgecoder {__version__}\ncore: {core}")
    return 0
