"""The Raspberry Pi image's own checks: what its firmware partition gives a Pi, and a boot
of the SD card on QEMU's Raspberry Pi 3 up to the agent answering.

QEMU runs no GPU firmware (start4.elf, config.txt) and has no Pi 4: the firmware
partition is checked for what a Pi 4's firmware reads, and the SD card boots on the
raspi3b machine with the kernel, initramfs, device tree and cmdline.txt from it, its
network a USB Ethernet adapter (QEMU emulates no Pi Ethernet). Skipped
for the x86-64 image. The arm64 ``-M virt`` boot (tests/image/test_boot.py) covers the
rest: the network, the claim, a chat.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.image.conftest import BOOT_TIMEOUT_S, TIMINGS, free_port, healthz, setup_code_in
from tests.image.qemu import ArmVirt, Board, FirmwareFiles, Guest, Raspi3b, decompress

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(2400)]


@pytest.fixture(scope="module")
def firmware(board: Board) -> FirmwareFiles:
    if not isinstance(board, ArmVirt):
        pytest.skip("the Raspberry Pi image's checks (make image-test-rpi)")
    return board.firmware


def test_the_firmware_partition_boots_a_pi_3_or_4(firmware: FirmwareFiles) -> None:
    config = firmware.config
    for line in ("arm_64bit=1", "enable_uart=1", "upstream_kernel=1", "[pi4]", "core_freq=360"):
        assert re.search(rf"^{re.escape(line)}$", config, re.MULTILINE), config
    # The GPU firmware of both, and the device trees of the boards the image is for.
    for name in ("bootcode.bin", "start.elf", "fixup.dat", "start4.elf", "fixup4.dat",
                 "bcm2837-rpi-3-b.dtb", "bcm2837-rpi-3-b-plus.dtb", "bcm2711-rpi-4-b.dtb",
                 "bcm2711-rpi-400.dtb", "bcm2711-rpi-cm4-io.dtb"):  # fmt: skip
        assert name in firmware.names, (name, firmware.names)
    cmdline = firmware.cmdline.split()
    assert "root=LABEL=root" in cmdline, cmdline
    assert cmdline[-1] != "console=tty0"
    assert [a for a in cmdline if a.startswith("console=")][-1] == "console=ttyS1,115200"


def test_a_pi_3_boots_the_sd_card_to_the_agent(
    image: Path, firmware: FirmwareFiles, tmp_path: Path
) -> None:
    # QEMU's SD card must be a power of two in size: a fresh copy of the image (without
    # the test channel: this machine has no port for it) padded up to one.
    card = tmp_path / "sd.raw"
    decompress(image, card, 0)
    os.truncate(card, 1 << (card.stat().st_size - 1).bit_length())
    port = free_port()
    guest = Guest(card, tmp_path, "raspi3b", board=Raspi3b(firmware), api_port=port)
    guest.start()
    try:
        seconds = guest.wait_for(
            "the agent answering on the forwarded port (over the USB adapter)",
            lambda: healthz(port) is not None,
            BOOT_TIMEOUT_S * 2,
        )
        TIMINGS["raspi3b: SD card to answering /healthz"] = f"{seconds:.1f} s"
        health = healthz(port)
        assert health is not None
        # First boot ran on the card (the host is named for the node), and the owner reads
        # the setup code off the GPIO serial line.
        console = re.sub(r"\x1b\[[0-9;]*m", "", guest.serial_text())
        node_id = str(health["node_id"])
        assert f"edgecoder-{node_id[:4]} login:" in console, guest.serial_tail()
        assert setup_code_in(console), guest.serial_tail()
        assert health["extensions"] is True
    except BaseException:
        print(guest.serial_tail(120))
        raise
    finally:
        guest.stop()
