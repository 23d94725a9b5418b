"""The appliance's own units and boot-time helpers (installed by ``make
install-appliance-units`` and ``image/overlay``): verify, hardening, sorted keys, and the
CPU generator that picks llama.cpp's fallback kernels."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"
OVERLAY = REPO / "image" / "overlay"
GENERATOR = OVERLAY / "usr/lib/systemd/system-generators/edgecoder-cpu-generator"
APPLIANCE = ("edgecoder-firstboot.service", "edgecoder-setup.service", "edgecoder-setup.path")

needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="needs systemd-analyze"
)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, env=env)


@needs_systemd
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    # verify checks that executables exist: point them at this checkout and this venv.
    replacements = {
        "/usr/bin/edgecoder": str(Path(sys.executable).parent / "edgecoder"),
        "/usr/libexec/edgecoder/firstboot": str(OVERLAY / "usr/libexec/edgecoder/firstboot"),
        "/sbin/agetty": shutil.which("true") or "/bin/true",
    }
    for name in APPLIANCE:
        text = (UNITS / name).read_text()
        for old, new in replacements.items():
            text = text.replace(old, new)
        (tmp_path / name).write_text(text)
    result = run("systemd-analyze", "verify", "--man=no", *(str(tmp_path / n) for n in APPLIANCE))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


@needs_systemd
def test_the_setup_code_unit_is_hardened() -> None:
    result = run("systemd-analyze", "security", "--offline=true",
                 str(UNITS / "edgecoder-setup.service"))  # fmt: skip
    found = re.search(r"Overall exposure level for edgecoder-setup\.service: (\d+\.\d+)",
                      result.stdout)  # fmt: skip
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 2.5, result.stdout


@pytest.mark.parametrize("name", [*APPLIANCE, "edgecoder-appliance.conf"])
def test_keys_are_sorted_within_each_section(name: str) -> None:
    section: list[str] = []
    for line in [*(UNITS / name).read_text().splitlines(), "[end]"]:
        if line.startswith("["):
            assert section == sorted(section), (name, section)
            section = []
        elif "=" in line and not line.startswith("#"):
            section.append(line.split("=", 1)[0])


def test_the_agent_waits_for_first_boot_and_the_setup_code() -> None:
    text = (UNITS / "edgecoder-appliance.conf").read_text()
    assert "After=edgecoder-firstboot.service edgecoder-setup.service" in text
    assert "Wants=edgecoder-setup.service" in text
    path = (UNITS / "edgecoder-setup.path").read_text()
    assert "PathChanged=/var/lib/edgecoder/claimed.json" in path


def generate(tmp_path: Path, flags: str) -> Path:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    fallbacks = tmp_path / "fallback"
    (fallbacks / "x86-64-v2").mkdir(parents=True, exist_ok=True)
    out = tmp_path / "generated"
    out.mkdir(exist_ok=True)
    env = {**os.environ, "EDGECODER_CPUINFO": str(cpuinfo), "EDGECODER_FALLBACKS": str(fallbacks)}
    result = run(str(GENERATOR), str(out), str(out), str(out), env=env)
    assert result.returncode == 0, result.stderr
    return out / "edgecoder.service.d" / "50-cpu-fallback.conf"


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the x86-64 baseline's flags")
def test_a_cpu_without_avx2_gets_the_fallback_kernels(tmp_path: Path) -> None:
    modern = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma f16c bmi2 popcnt"
    assert not generate(tmp_path, modern).exists()
    atom = "fpu sse sse2 ssse3 sse4_1 sse4_2 popcnt aes"
    drop_in = generate(tmp_path, atom)
    assert drop_in.read_text().splitlines()[-1] == (
        f"Environment=LD_LIBRARY_PATH={tmp_path / 'fallback' / 'x86-64-v2'}"
    )
