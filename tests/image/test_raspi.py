"""The Raspberry Pi image's own checks: what its firmware partition gives a Pi, and a boot
of the SD card on QEMU's Raspberry Pi 3 up to the agent's unit starting.

QEMU runs no GPU firmware (start4.elf, config.txt) and has no Pi 4: the firmware
partition is checked for what a Pi 4's firmware reads, and the SD card boots on the
raspi3b machine with the kernel, initramfs, device tree and cmdline.txt from it. Skipped
for the x86-64 image. The arm64 ``-M virt`` boot (tests/image/test_boot.py) covers the
rest: the network, the claim, a chat.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.image.conftest import BOOT_TIMEOUT_S, TIMINGS, setup_code_in
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
    guest = Guest(card, tmp_path, "raspi3b", board=Raspi3b(firmware))

    def console() -> str:
        # systemd's status lines carry colours and shorten long unit descriptions.
        return re.sub(r"\x1b\[[0-9;]*m", "", guest.serial_text())

    def agent_starting() -> bool:
        # systemd prints no "Started" once boot is over, which is before the model loads:
        # the unit starting, the host named by first boot (edgecoder-xxxx at the login
        # prompt) and the setup code shown (its unit runs after first boot and before the
        # agent) are what the console says.
        text = console()
        return (
            "Starting edgecoder.service" in text
            and re.search(r"edgecoder-\w{4} login:", text) is not None
            and setup_code_in(text) is not None
        )

    guest.start()
    try:
        seconds = guest.wait_for(
            "edgecoder.service starting, the host named and the setup code shown on the "
            "Pi's serial console",
            agent_starting,
            BOOT_TIMEOUT_S * 2,
        )
        TIMINGS["raspi3b: SD card to edgecoder.service starting"] = f"{seconds:.1f} s"
    except BaseException:
        print(guest.serial_tail(120))
        raise
    finally:
        guest.stop()
