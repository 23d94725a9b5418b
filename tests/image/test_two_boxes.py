"""Two copies of one image booted side by side on one LAN (a bridge with DHCP): each makes
its own identity at first boot, and they find each other over mDNS and join one mesh."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.image.conftest import BOOT_TIMEOUT_S, TIMINGS
from tests.image.lan import ImageLan, lan_unavailable
from tests.image.qemu import Board, Guest

# Booting under TCG takes minutes; the timeout bounds a hang, it is no statement on speed.
pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def pair(disk: Path, board: Board) -> Iterator[list[Guest]]:
    reason = lan_unavailable()
    if reason:
        pytest.fail(f"the two-box test cannot build its LAN: {reason}")
    work = disk.parent / "pair"
    work.mkdir()
    lan = ImageLan(work, 2)
    guests = []
    for i in range(2):
        guest = Guest(disk, work, f"box{i}", board=board, netdev=lan.netdev(i),
                      memory_mib=1536, prefix=lan.prefix)  # fmt: skip
        guests.append(guest)
    try:
        for guest in guests:
            guest.start()
        for guest in guests:
            # Nothing goes to the shell's port before the login prompt: a byte on a serial
            # line during the firmware is a key press, and opens systemd-boot's menu.
            guest.wait_for(
                "the login prompt on the serial console",
                lambda g=guest: re.search(r"edgecoder-\w{4} login:", g.serial_text()) is not None,
                BOOT_TIMEOUT_S,
            )
            seconds = guest.wait_for(
                "the agent active",
                lambda g=guest: (
                    g.channel.run("systemctl is-active edgecoder.service")[1] == "active"
                ),
                BOOT_TIMEOUT_S,
            )
            TIMINGS[f"two boxes: {guest.name} boot to agent active"] = f"{seconds:.1f} s"
        yield guests
    except BaseException:
        for guest in guests:
            print(guest.serial_tail(80))
        raise
    finally:
        for guest in guests:
            guest.stop()
        lan.close()


def identity(guest: Guest) -> dict[str, str]:
    shell = guest.channel
    keys = json.loads(shell.check("edgecoder keys show --data-dir=/var/lib/edgecoder --json"))
    return {
        "node": keys["node_id"],
        "host": shell.check("hostname"),
        "machine": shell.check("cat /etc/machine-id"),
        "address": next(a for a in shell.check("hostname -I").split() if "." in a),
    }


def test_each_copy_makes_its_own_identity(pair: list[Guest]) -> None:
    first, second = (identity(g) for g in pair)
    for key in ("node", "host", "machine", "address"):
        assert first[key] != second[key], (key, first, second)
    for ident in (first, second):
        assert ident["host"] == f"edgecoder-{ident['node'][:4]}"
        assert ident["address"].startswith("10.78.0."), ident


def test_they_resolve_each_others_names_over_mdns(pair: list[Guest]) -> None:
    second = identity(pair[1])
    answer = pair[0].channel.check(f"resolvectl query --no-pager -4 {second['host']}.local")
    assert second["address"] in answer, answer


def test_they_see_each_other_as_peers(pair: list[Guest]) -> None:
    ids = [identity(g)["node"] for g in pair]
    for guest, other in ((pair[0], ids[1]), (pair[1], ids[0])):
        seconds = guest.wait_for(
            f"{guest.name} to list the other box as an alive peer",
            lambda g=guest, o=other: any(
                p["node_id"] == o and p["state"] == "alive"
                for p in json.loads(g.channel.check("edgecoderctl peers --json"))
            ),
            300,
        )
        TIMINGS[f"two boxes: {guest.name} sees its peer"] = f"{seconds:.1f} s after boot"
