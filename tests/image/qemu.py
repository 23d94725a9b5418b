"""A booted copy of the appliance image under QEMU: the disk behind ``snapshot=on``, the
serial console in a file, and a test-only root shell.

Each kind of image boots on its own :class:`Board`: the x86-64 image as a UEFI PC (q35,
OVMF), the Raspberry Pi image as an arm64 virtual machine (``-M virt`` with a Pi 4's
Cortex-A72, the kernel, initramfs and command line taken from the image's own firmware
partition) or as a Raspberry Pi 3 (``-M raspi3b``, the SD card; QEMU has no Pi 4).

The shipped image has no way in: no password, no SSH. The boot test adds one to its own
decompressed copy, never to the image file: :func:`add_test_channel` writes a unit into
the copy's root file system with ``debugfs`` (no mount) that runs a root shell on a
second port (the PC's second serial port, the arm64 machine's virtio port), which QEMU
connects to a Unix socket here (:class:`Channel`).

QEMU runs with KVM when this machine has a usable one (``kvm_intel``/``kvm_amd``) and the
guest is x86-64, else TCG. It is stopped by its pid, and :meth:`Guest.serial_tail` is what
a failing test prints.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

__all__ = (
    "OVMF_CODE",
    "ArmVirt",
    "Board",
    "Channel",
    "Guest",
    "Raspi3b",
    "UefiPc",
    "accelerator",
    "add_test_channel",
    "board_for",
    "decompress",
    "firmware_files",
    "root_partition_offset",
)

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
TEST_UNIT = "edgecoder-test-channel.service"
_UNIT_TEXT = """\
# TEST ONLY (tests/image/qemu.py): a root shell on {port} for the boot test.
# Shipped images never contain this unit.
[Unit]
DefaultDependencies=no
Description=TEST ONLY: root shell on {port}
After=systemd-udevd.service
StartLimitIntervalSec=0
[Service]
Environment=PS1= PS2=
ExecStart=/bin/sh -c '{shell}'
Restart=always
RestartSec=1
[Install]
WantedBy=sysinit.target
"""
# The arm64 machine's test port is a virtio port (named by udev), which opens once: the
# shell reads and writes through one descriptor. It is there once its module has loaded;
# until then the unit restarts.
_VIRTIO_PORT = "/dev/virtio-ports/edgecoder.test"
_SERIAL_SHELL = "stty -F /dev/ttyS1 raw -echo; exec /bin/sh -s </dev/ttyS1 >/dev/ttyS1 2>&1"
_VIRTIO_SHELL = f"exec 3<>{_VIRTIO_PORT}; exec /bin/sh -s <&3 >&3 2>&3"


def accelerator(arch: str = "x86_64") -> tuple[str, str]:
    """(accel, cpu) for a guest of ``arch``: KVM and the host CPU when usable, else TCG.

    Under TCG an x86-64 guest gets a modern CPU (``max``) and an arm64 guest the
    Raspberry Pi 4's Cortex-A72. ``EDGECODER_IMAGE_CPU`` names another CPU model
    (``Westmere``: no AVX, so the x86 image's x86-64-v2 fallback runs; ``max`` on arm64:
    dotprod, so the Pi image's armv8.2-a baseline runs, as on a Pi 5).
    """
    kvm = (
        arch == "x86_64"
        and Path("/dev/kvm").exists()
        and any(Path(f"/sys/module/{m}").exists() for m in ("kvm_intel", "kvm_amd"))
    )
    if kvm:
        accel, cpu = "kvm", "host"
    else:
        accel, cpu = "tcg", "max" if arch == "x86_64" else "cortex-a72"
    return accel, os.environ.get("EDGECODER_IMAGE_CPU") or cpu


def decompress(image: Path, raw: Path, grow_bytes: int) -> None:
    """Decompress ``image`` to a sparse ``raw``, then make the disk ``grow_bytes`` larger."""
    subprocess.run(["zstd", "-q", "-d", "-f", "--sparse", str(image), "-o", str(raw)], check=True)
    with raw.open("r+b") as disk:
        disk.truncate(raw.stat().st_size + grow_bytes)


def _partition_table(raw: Path) -> dict[str, Any]:
    """sfdisk's JSON dump of the disk's partition table (GPT or MBR)."""
    dump = subprocess.run(
        ["sfdisk", "--json", str(raw)], capture_output=True, text=True, check=True
    )
    table: dict[str, Any] = json.loads(dump.stdout)["partitiontable"]
    return table


def _partition_offset(raw: Path, *, name: str, mbr_types: tuple[str, ...]) -> int:
    """The byte offset of the partition called ``name`` (GPT) or of an ``mbr_types`` one."""
    table = _partition_table(raw)
    for part in table["partitions"]:
        if part.get("name") == name or part.get("type") in mbr_types:
            return int(part["start"]) * int(table.get("sectorsize", 512))
    raise AssertionError(f"no {name} partition in {raw}: {table}")


def root_partition_offset(raw: Path) -> int:
    """The byte offset of the root partition in a disk image (GPT name, or MBR Linux)."""
    return _partition_offset(raw, name="root", mbr_types=("83", "L"))


@dataclass(frozen=True)
class FirmwareFiles:
    """What the Pi's firmware would load from the image's RASPIFIRM partition."""

    kernel: Path
    initrd: Path
    cmdline: str
    config: str
    names: tuple[str, ...]

    def dtb(self, name: str) -> Path:
        return self.kernel.parent / name


def firmware_files(raw: Path, out: Path) -> FirmwareFiles:
    """Copy the kernel, initramfs and device trees out of the Pi image's firmware partition
    (mtools, no mount), as config.txt names them."""
    offset = _partition_offset(raw, name="RASPIFIRM", mbr_types=("c", "b"))
    image = f"{raw}@@{offset}"
    out.mkdir(parents=True, exist_ok=True)
    listing = subprocess.run(["mdir", "-b", "-i", image, "::/"], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    names = tuple(sorted(line.rsplit("/", 1)[-1] for line in listing.split()))

    def read(name: str) -> str:
        return subprocess.run(["mtype", "-i", image, f"::/{name}"], capture_output=True,
                              text=True, check=True).stdout  # fmt: skip

    config = read("config.txt")
    kernel = re.search(r"^kernel=(\S+)", config, re.MULTILINE)
    initrd = re.search(r"^initramfs (\S+)", config, re.MULTILINE)
    assert kernel, f"config.txt names no kernel:\n{config}"
    assert initrd, f"config.txt names no initramfs:\n{config}"
    wanted = [kernel.group(1), initrd.group(1), *(n for n in names if n.endswith(".dtb"))]
    for name in wanted:
        subprocess.run(["mcopy", "-o", "-i", image, f"::/{name}", str(out / name)], check=True)
    return FirmwareFiles(
        kernel=out / kernel.group(1),
        initrd=out / initrd.group(1),
        cmdline=read("cmdline.txt").strip(),
        config=config,
        names=names,
    )


def debugfs(raw: Path, offset: int, commands: str, *, write: bool = False) -> str:
    """Run debugfs ``commands`` on the ext4 file system at ``offset`` in ``raw``."""
    args = ["debugfs", *(["-w"] if write else []), "-f", "-", f"{raw}?offset={offset}"]
    result = subprocess.run(args, input=commands, capture_output=True, text=True, check=True)
    return result.stdout + result.stderr


def add_test_channel(raw: Path, workdir: Path, board: Board) -> None:
    """Give the copy ``raw`` the test-only shell unit (and check the image had none)."""
    offset = root_partition_offset(raw)
    unit_path = f"/usr/lib/systemd/system/{TEST_UNIT}"
    before = debugfs(raw, offset, f"stat {unit_path}\n")
    assert "File not found" in before, f"the shipped image already has {TEST_UNIT}"
    unit = workdir / TEST_UNIT
    unit.write_text(board.channel_unit())
    unit.chmod(0o644)
    debugfs(raw, offset, write=True, commands=(
        f"write {unit} {unit_path}\n"
        f"symlink /etc/systemd/system/sysinit.target.wants/{TEST_UNIT} {unit_path}\n"
    ))  # fmt: skip


class Channel:
    """The test-only root shell on the guest's ttyS1, through QEMU's Unix socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._count = 0

    def _connect(self, deadline: float) -> socket.socket:
        while self._sock is None:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(self.path))
                self._sock = sock
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        return self._sock

    def run(self, command: str, timeout: float = 120.0) -> tuple[int, str]:
        """Run ``command`` in the guest's shell; returns (exit status, output)."""
        deadline = time.monotonic() + timeout
        sock = self._connect(deadline)
        self._count += 1
        marker = f"__EC_{self._count}_{int(time.monotonic() * 1000)}__"
        # The output is what lies between the two markers: whatever else the port carries
        # (a prompt, the firmware's messages after a reboot) is skipped.
        line = (f"echo {marker}_START; ( {command} ) </dev/null 2>&1; ec_rc=$?; echo; "
                f"echo {marker}_END $ec_rc\n")  # fmt: skip
        sock.sendall(line.encode())
        pattern = re.compile(
            marker.encode() + rb"_START\r?\n(.*?)\r?\n" + marker.encode() + rb"_END (\d+)\r?\n",
            re.DOTALL,
        )
        while True:
            found = pattern.search(self._buffer)
            if found:
                output = found.group(1).decode(errors="replace")
                self._buffer = self._buffer[found.end() :]
                return int(found.group(2)), output.replace("\r", "").strip()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no answer from the guest to {command!r} in {timeout:.0f}s")
            sock.settimeout(min(remaining, 1.0))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise ConnectionError("QEMU closed the test channel")
            self._buffer += chunk

    def send(self, command: str) -> None:
        """Send ``command`` without waiting for it (``systemctl reboot`` never answers)."""
        sock = self._connect(time.monotonic() + 30)
        sock.sendall(f"{command}\n".encode())

    def check(self, command: str, timeout: float = 120.0) -> str:
        """Run ``command`` and return its output; fail when it exits non-zero."""
        status, output = self.run(command, timeout)
        assert status == 0, f"{command!r} exited {status}:\n{output}"
        return output

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Board:
    """How QEMU boots one kind of image: the machine, its disk, console and test port."""

    arch = "x86_64"
    name = "board"
    #: Where the test-only shell runs in the guest, and how it opens it.
    channel_port = "ttyS1"
    channel_shell = _SERIAL_SHELL
    #: The QEMU device that plugs the guest into the host's forwarded network.
    nic = "virtio-net-pci"

    def channel_unit(self) -> str:
        return _UNIT_TEXT.format(port=self.channel_port, shell=self.channel_shell)

    def describe(self) -> str:
        accel, cpu = accelerator(self.arch)
        return f"{self.name} ({accel}, -cpu {cpu})"

    def command(self, guest: Guest, network: list[str]) -> list[str]:
        raise NotImplementedError


class UefiPc(Board):
    """The x86-64 image on a q35 PC with UEFI (OVMF), the disk on virtio."""

    name = "x86-64 UEFI PC"

    def command(self, guest: Guest, network: list[str]) -> list[str]:
        accel, cpu = accelerator(self.arch)
        vars_copy = guest.dir / "OVMF_VARS.fd"
        shutil.copyfile(OVMF_VARS, vars_copy)
        return [
            "qemu-system-x86_64", "-machine", "q35", "-accel", accel, "-cpu", cpu,
            "-smp", "2", "-m", str(guest.memory_mib), "-nographic", "-nodefaults",
            "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,file={vars_copy}",
            "-drive", f"file={guest.disk},format=raw,if=virtio,snapshot=on",
            *network,
            "-serial", f"file:{guest.serial}",
            "-chardev", f"socket,id=channel,path={guest.channel.path},server=on,wait=off",
            "-serial", "chardev:channel",
            "-monitor", "none",
        ]  # fmt: skip


class ArmVirt(Board):
    """The Pi image on QEMU's arm64 virtual machine: the whole SD image as a virtio disk,
    booted with the kernel, initramfs and command line of its firmware partition (the
    console moved to the machine's PL011 serial port)."""

    arch = "arm64"
    name = "arm64 virt"
    channel_port = "virtio port edgecoder.test"
    channel_shell = _VIRTIO_SHELL

    def __init__(self, firmware: FirmwareFiles) -> None:
        self.firmware = firmware

    def cmdline(self) -> str:
        args = [a for a in self.firmware.cmdline.split() if not a.startswith("console=")]
        return " ".join([*args, "console=ttyAMA0,115200"])

    def command(self, guest: Guest, network: list[str]) -> list[str]:
        accel, cpu = accelerator(self.arch)
        return [
            "qemu-system-aarch64", "-machine", "virt", "-accel", accel, "-cpu", cpu,
            "-smp", "2", "-m", str(guest.memory_mib), "-nographic", "-nodefaults",
            "-kernel", str(self.firmware.kernel), "-initrd", str(self.firmware.initrd),
            "-append", self.cmdline(),
            "-drive", f"file={guest.disk},format=raw,if=none,id=disk,snapshot=on",
            "-device", "virtio-blk-pci,drive=disk",
            *network,
            "-serial", f"file:{guest.serial}",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=channel,path={guest.channel.path},server=on,wait=off",
            "-device", "virtserialport,chardev=channel,name=edgecoder.test",
            "-monitor", "none",
        ]  # fmt: skip


class Raspi3b(Board):
    """The Pi image on QEMU's Raspberry Pi 3 (the nearest to a Pi 4 QEMU has): the SD card,
    the firmware partition's kernel, initramfs, device tree and cmdline.txt unchanged, its
    console on the mini UART. Its network is a USB Ethernet adapter on the SoC's USB
    controller (QEMU emulates no Pi Ethernet), the client port forwarded; there is no
    test port, so the boot is watched on the console and the forwarded port."""

    arch = "arm64"
    name = "Raspberry Pi 3B"
    nic = "usb-net"

    def __init__(self, firmware: FirmwareFiles) -> None:
        self.firmware = firmware

    def command(self, guest: Guest, network: list[str]) -> list[str]:
        # The first serial port is the PL011 (Bluetooth's on a real Pi), the second the
        # mini UART on the GPIO header: ttyS1, the console cmdline.txt names.
        return [
            "qemu-system-aarch64", "-machine", "raspi3b", "-m", "1024",
            "-nographic", "-nodefaults",
            "-dtb", str(self.firmware.dtb("bcm2837-rpi-3-b.dtb")),
            "-kernel", str(self.firmware.kernel), "-initrd", str(self.firmware.initrd),
            "-append", self.firmware.cmdline,
            "-drive", f"file={guest.disk},format=raw,if=sd,snapshot=on",
            *network,
            "-serial", f"file:{guest.dir / 'pl011.log'}",
            "-serial", f"file:{guest.serial}",
            "-monitor", "none",
        ]  # fmt: skip


def board_for(raw: Path, workdir: Path) -> Board:
    """The board an image boots on: an MBR with a RASPIFIRM partition is the Pi image."""
    if _partition_table(raw)["label"] == "dos":
        return ArmVirt(firmware_files(raw, workdir / "firmware"))
    return UefiPc()


class Guest:
    """One QEMU process booting ``disk`` (behind ``snapshot=on``) on ``board``."""

    def __init__(
        self,
        disk: Path,
        workdir: Path,
        name: str,
        *,
        board: Board,
        api_port: int | None = None,
        netdev: Sequence[str] = (),
        memory_mib: int = 2048,
        prefix: Sequence[str] = (),
    ) -> None:
        self.disk = disk
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.board = board
        self.api_port = api_port
        self.netdev = list(netdev)
        self.memory_mib = memory_mib
        self.prefix = list(prefix)
        self.serial = self.dir / "serial.log"
        self.channel = Channel(self.dir / "channel.sock")
        self.process: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None
        self.started = 0.0

    def command(self) -> list[str]:
        network: list[str] = []
        if self.api_port is not None:
            network += ["-netdev", f"user,id=wan,hostfwd=tcp:127.0.0.1:{self.api_port}-:4304",
                        "-device", f"{self.board.nic},netdev=wan"]  # fmt: skip
        network += self.netdev
        return [*self.prefix, *self.board.command(self, network)]

    def start(self) -> None:
        self.started = time.monotonic()
        self._log = (self.dir / "qemu.log").open("wb")
        self.process = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def serial_text(self) -> str:
        try:
            return self.serial.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def serial_tail(self, lines: int = 60) -> str:
        text = self.serial_text().replace("\r", "")
        qemu_log = self.dir / "qemu.log"
        qemu = qemu_log.read_text(errors="replace") if qemu_log.exists() else ""
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- {self.name}: serial console (last {lines} lines) ---\n{tail}\n{qemu}"

    def wait_for(self, what: str, predicate: object, timeout: float) -> float:
        """Poll ``predicate()`` every half second until true; returns seconds since start."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.alive(), f"QEMU exited while waiting for {what}\n{self.serial_tail()}"
            if predicate():  # type: ignore[operator]
                return time.monotonic() - self.started
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout:.0f}s\n{self.serial_tail()}")
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop QEMU by its pid (SIGTERM, then SIGKILL after 20 s)."""
        self.channel.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        if self._log is not None:
            self._log.close()
            self._log = None
