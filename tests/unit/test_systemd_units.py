"""The files in ``systemd/``: hardening score, ``systemd-analyze verify``, sysusers, tmpfiles,
the D-Bus policy, the preset, SPDX headers and sorted keys (``make units`` runs this)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
SERVICE = UNITS / "edgecoder.service"
MAX_EXPOSURE = 1.5

needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="needs systemd-analyze"
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


@needs_systemd
def test_the_service_is_hardened_to_an_exposure_of_at_most_1_5() -> None:
    result = run("systemd-analyze", "security", "--offline=true", str(SERVICE))
    found = re.search(r"Overall exposure level for edgecoder\.service: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, result.stdout


@needs_systemd
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    # verify checks that ExecStart= exists: point it at this interpreter's edgecoder.
    executable = Path(sys.executable).parent / "edgecoder"
    assert executable.exists()
    unit = tmp_path / "edgecoder.service"
    unit.write_text(SERVICE.read_text().replace("/usr/bin/edgecoder", str(executable)))
    result = run("systemd-analyze", "verify", "--man=no", str(unit))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""
    assert result.stdout.strip() == ""


def test_the_service_keeps_what_the_agent_needs() -> None:
    text = SERVICE.read_text()
    settings = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] not in "#;"
    )
    assert settings["Type"] == "notify"
    assert settings["Restart"] == "on-failure"
    assert settings["WatchdogSec"]
    assert settings["User"] == settings["Group"] == "edgecoder"
    families = settings["RestrictAddressFamilies"].split()
    # TCP listeners and mDNS, the D-Bus socket, interface enumeration.
    assert {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"} <= set(families)
    assert settings.get("PrivateNetwork", "no") == "no"
    assert "ProcSubset" not in settings  # /proc/loadavg and the Pi's device tree are read
    for directory in ("StateDirectory", "ConfigurationDirectory", "RuntimeDirectory"):
        assert settings[directory] == "edgecoder"


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="needs systemd-sysusers")
def test_sysusers_creates_the_user_and_its_group(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    result = run("systemd-sysusers", f"--root={tmp_path}", str(UNITS / "edgecoder.sysusers"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "etc/passwd").read_text().startswith("edgecoder:x:")
    assert "edgecoder:x:" in (tmp_path / "etc/group").read_text()


@pytest.mark.skipif(shutil.which("systemd-tmpfiles") is None, reason="needs systemd-tmpfiles")
def test_tmpfiles_creates_the_directories_with_their_modes(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    run("systemd-sysusers", f"--root={tmp_path}", str(UNITS / "edgecoder.sysusers"))
    result = run("systemd-tmpfiles", f"--root={tmp_path}", "--create",
                 str(UNITS / "edgecoder.tmpfiles"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var/lib/edgecoder").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "etc/edgecoder").stat().st_mode & 0o777 == 0o750


def test_the_dbus_policy_lets_only_the_service_own_the_name() -> None:
    root = ElementTree.parse(UNITS / "org.edgecoder.Agent.conf").getroot()  # noqa: S314 - ours
    owners = {
        tuple(sorted(policy.attrib.items()))
        for policy in root.iter("policy")
        for rule in policy
        if rule.tag == "allow" and rule.get("own") == "org.edgecoder.Agent"
    }
    assert owners == {(("user", "edgecoder"),)}
    callers = {
        tuple(sorted(policy.attrib.items()))
        for policy in root.iter("policy")
        for rule in policy
        if rule.tag == "allow" and rule.get("send_destination") == "org.edgecoder.Agent"
    }
    assert callers == {(("user", "edgecoder"),), (("user", "root"),), (("group", "edgecoder"),)}
    default = next(p for p in root.iter("policy") if p.get("context") == "default")
    assert {r.tag for r in default} == {"deny"}


def test_the_preset_enables_the_service() -> None:
    lines = [line for line in (UNITS / "90-edgecoder.preset").read_text().splitlines()
             if line and not line.startswith("#")]  # fmt: skip
    assert lines == ["enable edgecoder.service"]


@pytest.mark.parametrize("path", sorted(UNITS.iterdir()), ids=lambda p: p.name)
def test_every_file_has_an_spdx_header(path: Path) -> None:
    assert "SPDX-License-Identifier: Apache-2.0" in "".join(path.read_text().splitlines()[:3])


def test_the_service_keys_are_sorted_within_each_section() -> None:
    section: list[str] = []
    for line in [*SERVICE.read_text().splitlines(), "[end]"]:
        if line.startswith("["):
            assert section == sorted(section), section
            section = []
        elif "=" in line and not line.startswith("#"):
            section.append(line.split("=", 1)[0])
