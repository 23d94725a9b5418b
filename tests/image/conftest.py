"""Fixtures of the boot test: the image's decompressed copy, the board it boots on, one
booted guest, its owner's key.

``make image-test`` builds the x86-64 image and runs these with ``EDGECODER_IMAGE`` set to
it, ``make image-test-rpi`` the Raspberry Pi image; without it they are skipped (``make
test`` does not boot images). Timings go to the end of the test report (boot to
answering, and the rest), never into assertions.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.image.qemu import Board, Guest, add_test_channel, board_for, decompress

TIMINGS: dict[str, str] = {}
BOOT_TIMEOUT_S = 600.0
GROW_BYTES = 1 << 30


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("appliance boot test")
        for what, value in TIMINGS.items():
            terminalreporter.write_line(f"{what}: {value}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def image() -> Path:
    """The compressed image under test (``EDGECODER_IMAGE``)."""
    path = os.environ.get("EDGECODER_IMAGE")
    if not path:
        pytest.skip("boots the appliance image: run 'make image-test' (sets EDGECODER_IMAGE)")
    image = Path(path)
    assert image.is_file(), f"EDGECODER_IMAGE={path} does not exist"
    return image


@pytest.fixture(scope="session")
def raw_disk(image: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A decompressed copy of the image, 1 GiB larger (first boot grows into it)."""
    raw = tmp_path_factory.mktemp("image") / "disk.raw"
    decompress(image, raw, GROW_BYTES)
    return raw


@pytest.fixture(scope="session")
def board(raw_disk: Path) -> Board:
    """What the image boots on: a UEFI PC, or an arm64 machine for the Pi image."""
    board = board_for(raw_disk, raw_disk.parent)
    TIMINGS["board"] = board.describe()
    return board


@pytest.fixture(scope="session")
def disk(raw_disk: Path, board: Board) -> Path:
    """The decompressed copy with the test-only channel."""
    add_test_channel(raw_disk, raw_disk.parent, board)
    return raw_disk


def healthz(port: int) -> dict[str, object] | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2.0)
    except httpx.HTTPError:
        return None
    body: dict[str, object] = response.json() if response.status_code == 200 else {}
    return body or None


def setup_code_in(console: str) -> str | None:
    """The last setup code a console's text shows, if any."""
    codes = re.findall(r"Setup code: ([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})", console)
    return str(codes[-1]) if codes else None


class Box:
    """The booted appliance: its guest, forwarded client port and boot facts."""

    def __init__(self, guest: Guest, port: int) -> None:
        self.guest = guest
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.first_health: dict[str, object] = {}

    def wait_answering(self, label: str) -> dict[str, object]:
        seconds = self.guest.wait_for(
            "the agent answering on the forwarded port",
            lambda: healthz(self.port) is not None,
            BOOT_TIMEOUT_S,
        )
        TIMINGS[label] = f"{seconds:.1f} s"
        health = healthz(self.port)
        assert health is not None
        return health

    def setup_code(self) -> str:
        """The setup code as the serial console shows it."""
        code = setup_code_in(self.guest.serial_text())
        assert code, f"no setup code on the serial console\n{self.guest.serial_tail()}"
        return code


@pytest.fixture(scope="module")
def box(disk: Path, board: Board, request: pytest.FixtureRequest) -> Iterator[Box]:
    """One guest booted from the copy, its client port forwarded to loopback."""
    work = disk.parent
    port = free_port()
    name = f"box-{request.module.__name__.rsplit('.', 1)[-1]}"
    guest = Guest(disk, work, name, board=board, api_port=port)
    guest.start()
    box = Box(guest, port)
    try:
        box.first_health = box.wait_answering("first boot to answering /healthz")
        yield box
    except BaseException:
        print(guest.serial_tail(120))
        raise
    finally:
        guest.stop()


@pytest.fixture(scope="module")
def admin_key(box: Box) -> str:
    """The owner's admin key, from the claim flow: the console's code, then POST /setup."""
    code = box.setup_code()
    started = time.monotonic()
    with httpx.Client(base_url=box.url, timeout=60.0) as client:
        assert client.get("/setup").json()["setup"] == "open"
        wrong = client.post("/setup", json={"code": "0000-0000-0000"})
        assert wrong.status_code == 403, wrong.text
        answer = client.post("/setup", json={"code": code, "name": "owner"})
        assert answer.status_code == 201, answer.text
    TIMINGS["claim (POST /setup)"] = f"{time.monotonic() - started:.1f} s"
    key: str = answer.json()["key"]
    return key
