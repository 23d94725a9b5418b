"""The sd_notify client against a datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from edgecoder.config import SystemdEnv
from edgecoder.daemon.sdnotify import Notifier


def _receiver(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    return sock


def test_messages_reach_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with _receiver(path) as sock:
        notifier = Notifier(SystemdEnv(notify_socket=str(path), watchdog_usec=3_000_000))
        assert notifier.enabled
        assert notifier.watchdog_interval == 1.5
        notifier.ready("Serving")
        notifier.watchdog()
        notifier.stopping("Stopping")
        assert sock.recv(4096).decode().split("\n") == [
            "READY=1",
            "STATUS=Serving",
            f"MAINPID={os.getpid()}",
        ]
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert sock.recv(4096) == b"STOPPING=1\nSTATUS=Stopping"
        notifier.close()


def test_abstract_socket_address() -> None:
    name = f"edgecoder-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        notifier = Notifier(SystemdEnv(notify_socket="@" + name))
        notifier.status("hello")
        notifier.close()
        assert sock.recv(100) == b"STATUS=hello"


def test_without_systemd_everything_is_a_no_op() -> None:
    notifier = Notifier(SystemdEnv())
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    notifier.ready("x")
    notifier.close()


def test_watchdog_meant_for_another_process_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with _receiver(path):
        env = SystemdEnv(notify_socket=str(path), watchdog_usec=1_000_000, watchdog_pid=1)
        for pid, interval in ((4242, None), (1, 0.5)):
            notifier = Notifier(env, pid=pid)
            assert notifier.watchdog_interval == interval
            notifier.close()


def test_a_vanished_manager_is_not_an_error(tmp_path: Path) -> None:
    notifier = Notifier(SystemdEnv(notify_socket=str(tmp_path / "gone")))
    notifier.ready("x")  # logged at debug, never raised
    notifier.close()
