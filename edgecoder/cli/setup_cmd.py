"""``edgecoder setup-code``: the appliance's one-time setup code, made and shown, or removed.

Run as root at every boot and agent start, before the agent (``edgecoder-setup.service``),
and again when the node is claimed (``edgecoder-setup.path``). It makes the files match
the node's state, so running it twice changes nothing:

* not claimed: keep the code in a root-only file (``--code-file``, mode 0600) and its
  verifier in the data directory (owned by the agent, which never sees the code); a
  missing or mismatched pair (first boot, a wiped data directory) gets a new code. The
  code is shown on the login prompts of the console and serial line (``--issue-file``,
  an agetty issue snippet, also root-only) and, with ``--console``, written straight to
  every active kernel console.
* claimed: both root-only files are deleted.

The code never goes to stdout or stderr: under systemd those are the journal.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
from pathlib import Path

from edgecoder.cli.options import config_from_args
from edgecoder.errors import StorageError
from edgecoder.security.setup_codes import check_code, generate_code, make_verifier
from edgecoder.storage import setup_state
from edgecoder.storage.datadir import atomic_write, prepare_data_dir, remove_file

__all__ = ("run",)

_ACTIVE_CONSOLES = Path("/sys/class/tty/console/active")


def _banner(code: str, host: str, address: str) -> str:
    url = f"http://{host}.local:4304"
    return (
        f"\nEdgeCoder: this box waits for its owner. Setup code: {code}\n"
        f'Claim it from the LAN: curl -X POST {url}/setup -d \'{{"code": "{code}"}}\'\n'
        f"(or {address}) -- the answer holds the first admin key.\n\n"
    )


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, text.encode("utf-8"), mode=0o600)


def _read_code(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip() or None
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read the setup code in {path}: {exc}") from None


def _to_consoles(text: str) -> None:
    """Write ``text`` to every active kernel console (tty0 and ttyS0, say); best effort."""
    try:
        names = _ACTIVE_CONSOLES.read_text().split()
    except OSError:
        return
    for name in names:
        with contextlib.suppress(OSError):
            fd = os.open(f"/dev/{name}", os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
            try:
                os.write(fd, text.replace("\n", "\r\n").encode("utf-8"))
            finally:
                os.close(fd)


def run(args: argparse.Namespace) -> int:
    """Make the setup files match the node's state (see the module docstring).

    :raises DataDirError: the data directory is unusable.
    :raises StorageError: a file cannot be read or written.
    """
    data_dir = config_from_args(args).node.data_dir
    claim = setup_state.read_claim(data_dir) if data_dir.exists() else None
    if claim is not None:
        # The login prompt goes first: once the code file is gone, nothing shows the code.
        remove_file(args.issue_file)
        remove_file(args.code_file)
        print(f"setup closed: claimed by admin key '{claim.name}' from {claim.address}")
        return 0
    prepare_data_dir(data_dir)
    code = _read_code(args.code_file)
    verifier = setup_state.read_verifier(data_dir)
    if code is None or verifier is None or not check_code(verifier, code):
        code = generate_code()
        _write_private(args.code_file, code + "\n")
        setup_state.write_verifier(data_dir, make_verifier(code))
        print(f"setup open: a new setup code is in {args.code_file}")
    else:
        print(f"setup open: the setup code in {args.code_file} stands")
    # agetty expands \n to the host name and \4 to its IPv4 address at each prompt.
    _write_private(args.issue_file, _banner(code, "\\n", "http://\\4:4304"))
    if args.console:
        _to_consoles(_banner(code, socket.gethostname(), "its IP address on port 4304"))
    return 0
