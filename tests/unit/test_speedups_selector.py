"""The selector: the compiled core loads when it should, and the switch forces the pure one."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

from edgecoder import speedups


def test_compiled_core_loaded_when_required() -> None:
    # CI and image builds set EDGECODER_REQUIRE_EXTENSIONS: a silent pure fallback fails here.
    required = os.environ.get("EDGECODER_REQUIRE_EXTENSIONS", "").strip() not in {"", "0"}
    disabled = os.environ.get("EDGECODER_NO_EXTENSIONS", "").strip() not in {"", "0"}
    if required and not disabled:
        assert speedups.USING_EXTENSIONS, speedups.FALLBACK_REASON
        assert speedups.canonical.__name__ == "edgecoder.speedups._compiled.canonical"
    if disabled:
        assert not speedups.USING_EXTENSIONS
        assert "EDGECODER_NO_EXTENSIONS" in speedups.FALLBACK_REASON


def test_no_extensions_switch_selects_the_pure_core() -> None:
    code = "from edgecoder import speedups as s; print(s.USING_EXTENSIONS, s.signing.__name__)"
    env = dict(os.environ, EDGECODER_NO_EXTENSIONS="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "edgecoder.speedups._pure.signing"]


def test_twins_export_the_same_names() -> None:
    for name in ("canonical", "chain", "envelope", "replay", "signing"):
        pure = importlib.import_module(f"edgecoder.speedups._pure.{name}")
        selected = getattr(speedups, name)
        assert tuple(pure.__all__) == tuple(selected.__all__)
        for public in pure.__all__:
            assert hasattr(selected, public), f"{selected.__name__} lacks {public}"
