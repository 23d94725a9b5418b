"""A booted copy of the appliance image under QEMU: UEFI (OVMF), the disk behind
``snapshot=on``, the serial console in a file, and a test-only root shell.

The shipped image has no way in: no password, no SSH. The boot test adds one to its own
decompressed copy, never to the image file: :func:`add_test_channel` writes a unit into
the copy's root file system with ``debugfs`` (no mount) that runs a root shell on the
second serial port, which QEMU connects to a Unix socket here (:class:`Channel`).

QEMU runs with KVM when this machine has a usable one (``kvm_intel``/``kvm_amd``), else
TCG. It is stopped by its pid, and :meth:`Guest.serial_tail` is what a failing test prints.
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
from pathlib import Path
from typing import BinaryIO

__all__ = (
    "OVMF_CODE",
    "Channel",
    "Guest",
    "accelerator",
    "add_test_channel",
    "decompress",
    "root_partition_offset",
)

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
TEST_UNIT = "edgecoder-test-channel.service"
_UNIT_TEXT = """\
# TEST ONLY (tests/image/qemu.py): a root shell on ttyS1 for the boot test.
# Shipped images never contain this unit.
[Unit]
DefaultDependencies=no
Description=TEST ONLY: root shell on ttyS1
After=systemd-udevd.service
[Service]
Environment=PS1= PS2=
ExecStart=/bin/sh -c 'stty -F /dev/ttyS1 raw -echo; exec /bin/sh -s </dev/ttyS1 >/dev/ttyS1 2>&1'
Restart=always
RestartSec=1
[Install]
WantedBy=sysinit.target
"""


def accelerator() -> tuple[str, str]:
    """(accel, cpu): KVM and the host CPU when usable, else TCG emulating a modern CPU.

    ``EDGECODER_IMAGE_CPU`` names another CPU model (``Westmere``: no AVX, so the image's
    x86-64-v2 fallback runs).
    """
    kvm = Path("/dev/kvm").exists() and any(
        Path(f"/sys/module/{m}").exists() for m in ("kvm_intel", "kvm_amd")
    )
    accel, cpu = ("kvm", "host") if kvm else ("tcg", "max")
    return accel, os.environ.get("EDGECODER_IMAGE_CPU") or cpu


def decompress(image: Path, raw: Path, grow_bytes: int) -> None:
    """Decompress ``image`` to a sparse ``raw``, then make the disk ``grow_bytes`` larger."""
    subprocess.run(["zstd", "-q", "-d", "-f", "--sparse", str(image), "-o", str(raw)], check=True)
    with raw.open("r+b") as disk:
        disk.truncate(raw.stat().st_size + grow_bytes)


def root_partition_offset(raw: Path) -> int:
    """The byte offset of the partition named ``root`` in a disk image."""
    dump = subprocess.run(
        ["sfdisk", "--json", str(raw)], capture_output=True, text=True, check=True
    )
    table = json.loads(dump.stdout)["partitiontable"]
    for part in table["partitions"]:
        if part.get("name") == "root" or part.get("type") in ("83", "L"):
            return int(part["start"]) * int(table.get("sectorsize", 512))
    raise AssertionError(f"no root partition in {raw}: {table}")


def debugfs(raw: Path, offset: int, commands: str, *, write: bool = False) -> str:
    """Run debugfs ``commands`` on the ext4 file system at ``offset`` in ``raw``."""
    args = ["debugfs", *(["-w"] if write else []), "-f", "-", f"{raw}?offset={offset}"]
    result = subprocess.run(args, input=commands, capture_output=True, text=True, check=True)
    return result.stdout + result.stderr


def add_test_channel(raw: Path, workdir: Path) -> None:
    """Give the copy ``raw`` the test-only shell unit (and check the image had none)."""
    offset = root_partition_offset(raw)
    unit_path = f"/usr/lib/systemd/system/{TEST_UNIT}"
    before = debugfs(raw, offset, f"stat {unit_path}\n")
    assert "File not found" in before, f"the shipped image already has {TEST_UNIT}"
    unit = workdir / TEST_UNIT
    unit.write_text(_UNIT_TEXT)
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


class Guest:
    """One QEMU process booting ``disk`` (behind ``snapshot=on``)."""

    def __init__(
        self,
        disk: Path,
        workdir: Path,
        name: str,
        *,
        api_port: int | None = None,
        netdev: Sequence[str] = (),
        memory_mib: int = 2048,
        prefix: Sequence[str] = (),
    ) -> None:
        self.disk = disk
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
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
        accel, cpu = accelerator()
        vars_copy = self.dir / "OVMF_VARS.fd"
        shutil.copyfile(OVMF_VARS, vars_copy)
        network: list[str] = []
        if self.api_port is not None:
            network += ["-netdev", f"user,id=wan,hostfwd=tcp:127.0.0.1:{self.api_port}-:4304",
                        "-device", "virtio-net-pci,netdev=wan"]  # fmt: skip
        network += self.netdev
        return [
            *self.prefix,
            "qemu-system-x86_64", "-machine", "q35", "-accel", accel, "-cpu", cpu,
            "-smp", "2", "-m", str(self.memory_mib), "-nographic", "-nodefaults",
            "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,file={vars_copy}",
            "-drive", f"file={self.disk},format=raw,if=virtio,snapshot=on",
            *network,
            "-serial", f"file:{self.serial}",
            "-chardev", f"socket,id=channel,path={self.channel.path},server=on,wait=off",
            "-serial", "chardev:channel",
            "-monitor", "none",
        ]  # fmt: skip

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
