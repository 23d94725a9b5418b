"""The appliance booted under QEMU (the x86-64 image as a UEFI PC, the Pi image as an arm64
machine): real systemd, first boot, the claim flow, a streamed chat through the official
OpenAI SDK, edgecoderctl on the box, and a reboot.

The tests share one booted guest and run in file order: the reboot comes last.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.image.conftest import GROW_BYTES, TIMINGS, Box, healthz
from tests.image.qemu import root_partition_offset

# Booting under TCG takes minutes; the timeout bounds a hang, it is no statement on speed.
pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(1800)]

UNITS = Path(__file__).resolve().parents[2] / "systemd"


def exposure(text: str) -> float:
    found = re.search(r"Overall exposure level for edgecoder\.service: (\d+\.\d+)", text)
    assert found, text
    return float(found.group(1))


def exposed(text: str) -> set[str]:
    """The settings systemd-analyze marks as exposed (✗), with what each costs."""
    return {" ".join(line.split()[1:2] + line.split()[-1:]) for line in text.splitlines()
            if line.startswith("✗")}  # fmt: skip


def test_systemd_is_pid_1_and_the_system_is_running(box: Box) -> None:
    shell = box.guest.channel
    assert shell.check("readlink /proc/1/exe") == "/usr/lib/systemd/systemd"
    status, state = shell.run("systemctl is-system-running --wait", timeout=300)
    failed = shell.check("systemctl --failed --no-legend --plain")
    assert state.splitlines()[-1] == "running", f"{state}\nfailed units:\n{failed}"
    assert status == 0
    # Where the first boot's time went, for docs/image.md.
    TIMINGS["systemd-analyze (first boot)"] = shell.check("systemd-analyze time | head -1")
    blame = shell.check("systemd-analyze blame --no-pager | head -8")
    units = (" ".join(line.split()) for line in blame.splitlines())
    TIMINGS["slowest units (first boot)"] = "; ".join(units)
    chain = shell.check("systemd-analyze critical-chain --no-pager edgecoder.service")
    links = (" ".join(line.split()) for line in chain.splitlines()[2:])
    TIMINGS["critical chain to the agent (first boot)"] = " <- ".join(links)


def test_the_agent_runs_under_its_hardened_unit(box: Box) -> None:
    shell = box.guest.channel
    props = dict(
        line.split("=", 1)
        for line in shell.check(
            "systemctl show edgecoder.service -p ActiveState -p SubState -p MainPID "
            "-p FragmentPath -p Type -p NRestarts"
        ).splitlines()
    )
    assert (props["ActiveState"], props["SubState"], props["Type"]) == (
        "active", "running", "notify")  # fmt: skip
    # The unit make install-units put in /usr/lib (/lib is the same directory: merged /usr).
    assert props["FragmentPath"].endswith("/lib/systemd/system/edgecoder.service")
    assert props["NRestarts"] == "0"
    assert shell.check(f"stat -c %U /proc/{props['MainPID']}") == "edgecoder"
    assert box.first_health["extensions"] is True  # the compiled core
    environment = shell.check("systemctl show edgecoder.service -p Environment")
    fallback = re.search(r"llama-fallback/([\w.-]+)", environment)
    TIMINGS["llama.cpp CPU kernels"] = (
        f"{fallback.group(1)} fallback" if fallback else "the image's baseline"
    )
    backend = box.first_health["backend"]
    assert isinstance(backend, dict)
    assert backend["state"] == "ready", backend
    # The image's /etc/edgecoder/edgecoder.toml names the embedded backend (no Ollama probe).
    assert (backend["requested"], backend["active"]) == ("llamacpp", "llamacpp"), backend
    # Where the agent's own start went (seconds since boot), for docs/image.md.
    started = shell.check(
        "journalctl -b -u edgecoder.service -o short-monotonic --no-pager | head -14"
    )
    TIMINGS["agent start (journal, first boot)"] = "".join(
        f"\n    {line[:150]}" for line in started.splitlines()
    )


def test_the_booted_unit_is_as_exposed_as_the_offline_analysis_says(box: Box) -> None:
    offline = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(UNITS / "edgecoder.service")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    # Wide enough that no setting's name is cut short in the table.
    booted = box.guest.channel.check(
        "COLUMNS=400 systemd-analyze security --no-pager edgecoder.service"
    )
    TIMINGS["systemd-analyze security edgecoder (booted / offline)"] = (
        f"{exposure(booted)} / {exposure(offline.stdout)}"
    )
    assert exposed(booted) == exposed(offline.stdout)
    assert exposure(booted) == exposure(offline.stdout)


def test_first_boot_made_the_identity_and_grew_the_root(box: Box, disk: Path) -> None:
    shell = box.guest.channel
    node_id = str(box.first_health["node_id"])
    assert shell.check("hostname") == f"edgecoder-{node_id[:4]}"
    assert shell.check("cat /etc/hostname") == f"edgecoder-{node_id[:4]}"
    machine_id = shell.check("cat /etc/machine-id")
    assert re.fullmatch(r"[0-9a-f]{32}", machine_id), machine_id
    assert shell.check("stat -c '%a %U' /var/lib/edgecoder /var/lib/edgecoder/node.key") == (
        "700 edgecoder\n600 edgecoder"
    )
    assert shell.check("edgecoder keys show --data-dir=/var/lib/edgecoder --json").count(node_id)
    # The disk is 1 GiB larger than the image; the root file system took it.
    image_end = disk.stat().st_size - GROW_BYTES
    root_in_image = image_end - root_partition_offset(disk)
    root_now = int(shell.check("df -B1 --output=size / | tail -1"))
    assert root_now > root_in_image + GROW_BYTES // 2, (root_now, root_in_image)
    # mDNS is on for the wired port, so the LAN resolves edgecoder-xxxx.local.
    assert "+mDNS" in shell.check("resolvectl status --no-pager")


def test_the_setup_code_is_root_only_and_on_the_console(box: Box) -> None:
    shell = box.guest.channel
    code = box.setup_code()
    assert shell.check("stat -c '%a %U' /var/lib/edgecoder-setup/code") == "600 root"
    assert shell.check("cat /var/lib/edgecoder-setup/code") == code
    assert code in shell.check("cat /etc/issue.d/50-edgecoder-setup.issue")
    # The agent holds a verifier, not the code.
    assert code not in shell.check("cat /var/lib/edgecoder/setup-code.json")
    assert code not in shell.check("journalctl -b --no-pager -o cat")


def test_the_claim_gives_an_admin_key_and_closes_setup(box: Box, admin_key: str) -> None:
    with httpx.Client(base_url=box.url, timeout=60.0) as client:
        status = client.get("/admin/status", headers={"Authorization": f"Bearer {admin_key}"})
        assert status.status_code == 200, status.text
        assert client.get("/setup").status_code == 404
        assert client.post("/setup", json={"code": box.setup_code()}).status_code == 404
    shell = box.guest.channel
    # edgecoder-setup.path deletes the root-only code and its login prompt.
    box.guest.wait_for(
        "the setup code deleted after the claim",
        lambda: shell.run("test -e /var/lib/edgecoder-setup/code")[0] != 0,
        60,
    )
    assert shell.run("test -e /etc/issue.d/50-edgecoder-setup.issue")[0] != 0
    assert '"name": "owner"' in shell.check("cat /var/lib/edgecoder/claimed.json")


def test_the_openai_sdk_streams_a_chat(box: Box, admin_key: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{box.url}/v1", api_key=admin_key, timeout=300.0)
    started = time.monotonic()
    stream = client.chat.completions.create(
        model="gemma3:270m",
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=8,
        stream=True,
    )
    pieces, finish, first = [], None, None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            first = first or time.monotonic()
            pieces.append(chunk.choices[0].delta.content)
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert "".join(pieces).strip(), pieces
    assert finish in ("stop", "length")
    TIMINGS["streamed chat, 8 tokens (first token / all)"] = (
        f"{(first or started) - started:.1f} s / {time.monotonic() - started:.1f} s"
    )


def test_edgecoderctl_status_works_on_the_box(box: Box) -> None:
    output = box.guest.channel.check("edgecoderctl status")
    assert str(box.first_health["node_id"]) in output


def test_a_reboot_keeps_the_identity_and_the_journal(box: Box, admin_key: str) -> None:
    shell = box.guest.channel
    before = {
        "node": box.first_health["node_id"],
        "machine": shell.check("cat /etc/machine-id"),
        "host": shell.check("hostname"),
    }
    shell.send("systemctl reboot")
    box.guest.wait_for("the agent to go down", lambda: healthz(box.port) is None, 300)
    restarted = time.monotonic()
    box.guest.wait_for("the agent back up", lambda: healthz(box.port) is not None, 600)
    TIMINGS["reboot to answering /healthz"] = f"{time.monotonic() - restarted:.1f} s"
    after = {
        "node": (healthz(box.port) or {}).get("node_id"),
        "machine": shell.check("cat /etc/machine-id"),
        "host": shell.check("hostname"),
    }
    assert after == before
    # First boot does not run again, and the owner's key still works.
    result = shell.check("systemctl show edgecoder-firstboot.service -p ConditionResult")
    assert result == "ConditionResult=no"
    status = httpx.get(f"{box.url}/admin/status", timeout=60.0,
                       headers={"Authorization": f"Bearer {admin_key}"})  # fmt: skip
    assert status.status_code == 200
    # journald is persistent: the agent's lines from the first boot are still there.
    boots = shell.check("journalctl --list-boots --no-pager").splitlines()[1:]
    assert len(boots) >= 2, boots
    previous = shell.check("journalctl -b -1 -u edgecoder.service --no-pager -o cat")
    assert len(previous.splitlines()) >= 3, previous
    assert "edgecoder" in previous
