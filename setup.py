"""Build the compiled core in ``_speedups/`` (Cython over libsodium), or a pure build.

Environment switches (read here and by the runtime selector only):

* ``EDGECODER_NO_EXTENSIONS=1``: build nothing; the pure-Python twins are used.
* ``EDGECODER_REQUIRE_EXTENSIONS=1``: a failed compile is an error, not a fallback
  (image builds and CI set it).
* ``EDGECODER_CYTHON_TRACE=1``: compile with line tracing for Cython coverage.

Whatever it builds, it says so on stderr in one line starting ``edgecoder build:``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

MODULES = ("canonical", "chain", "envelope", "replay", "signing")
PACKAGE = "edgecoder.speedups._compiled"
HERE = Path(__file__).parent


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _report(message: str) -> None:
    print(f"edgecoder build: {message}", file=sys.stderr, flush=True)


def _fall_back(reason: str) -> None:
    if _flag("EDGECODER_REQUIRE_EXTENSIONS"):
        _report(f"compiling the core failed and EDGECODER_REQUIRE_EXTENSIONS is set: {reason}")
        raise SystemExit(1)
    _report(f"compiling the core failed ({reason}); built the pure-Python core instead")


class OptionalBuildExt(build_ext):
    """Compile the core as one unit: all extensions, or (unless required) none of them."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            for output in self.get_outputs():
                Path(output).unlink(missing_ok=True)
            _fall_back(str(exc).strip() or type(exc).__name__)
            return
        _report(f"compiled core built ({len(self.extensions)} Cython extensions over libsodium)")


def _extensions() -> list[Extension]:
    if _flag("EDGECODER_NO_EXTENSIONS"):
        _report("EDGECODER_NO_EXTENSIONS is set: built the pure-Python core")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        if _flag("EDGECODER_REQUIRE_EXTENSIONS"):
            raise SystemExit(
                "edgecoder build: Cython is missing and extensions are required"
            ) from None
        _report("Cython is not installed: built the pure-Python core")
        return []
    trace = _flag("EDGECODER_CYTHON_TRACE")
    macros = [("CYTHON_TRACE_NOGIL", "1"), ("CYTHON_TRACE", "1")] if trace else []
    extensions = [
        Extension(
            f"{PACKAGE}.{name}",
            [f"_speedups/{name}.pyx"],
            libraries=["sodium"],
            define_macros=macros,
        )
        for name in MODULES
    ]
    try:
        return list(
            cythonize(
                extensions,
                include_path=[str(HERE / "_speedups"), str(HERE)],
                compiler_directives={"language_level": "3", "linetrace": trace},
                quiet=True,
            )
        )
    except Exception as exc:
        _fall_back(f"Cython: {exc}")
        return []


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
