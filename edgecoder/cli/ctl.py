"""``edgecoderctl``: manage the local agent over D-Bus, the way ``busctl`` talks to services.

Talks to ``org.edgecoder.Agent`` on the system bus (``--session``: the session bus, like
``busctl --user``). Exit codes: 0 done, 1 the agent refused (its message is printed),
2 bad usage, 3 the agent is not running (or no bus), 4 permission denied.

This module is the command line alone: each command names its action in
:mod:`edgecoder.cli.ctl_node` or :mod:`edgecoder.cli.ctl_accounts`, and the D-Bus session
(:mod:`edgecoder.cli.ctl_bus`) is imported only once the arguments parse.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Any

from edgecoder.cli.handler import Handler

__all__ = ("main",)

_SESSION = Handler("ctl_bus", "run")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgecoderctl", description="Manage the local EdgeCoder agent over D-Bus."
    )
    parser.add_argument("--session", action="store_true", help="use the session bus")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str, action: Handler) -> Any:
        sub = commands.add_parser(name, help=help_text)
        sub.set_defaults(action=action)
        return sub

    node, accounts = "ctl_node", "ctl_accounts"
    command("status", "the node's status", Handler(node, "status")).add_argument(
        "--json", action="store_true"
    )
    command("peers", "the mesh peers it knows", Handler(node, "peers")).add_argument(
        "--json", action="store_true"
    )
    models = command("models", "list, pull, remove models; set the default",
                     Handler(node, "models"))  # fmt: skip
    actions = models.add_subparsers(dest="models_action", required=True)
    actions.add_parser("list").add_argument("--json", action="store_true")
    for verb in ("pull", "rm", "default"):
        actions.add_parser(verb).add_argument("name")
    command("mode", "show or set the mode", Handler(node, "mode")).add_argument(
        "mode", nargs="?", choices=("mesh", "local-only")
    )
    command("busy", "say whether the owner uses the machine", Handler(node, "busy")).add_argument(
        "state", choices=("on", "off")
    )
    keys = command("keys", "create, list, revoke API keys", Handler(accounts, "keys"))
    key_actions = keys.add_subparsers(dest="keys_action", required=True)
    create = key_actions.add_parser("create")
    create.add_argument("name")
    create.add_argument("--admin", action="store_true")
    key_actions.add_parser("list").add_argument("--json", action="store_true")
    key_actions.add_parser("revoke").add_argument("name")
    budget = key_actions.add_parser("budget", help="a key's budget in mc ('none': no limit)")
    budget.add_argument("name")
    budget.add_argument("mc", metavar="MC|none")
    command("credits", "this node's credits and newest ledger entries",
            Handler(accounts, "credits")).add_argument("--json", action="store_true")  # fmt: skip
    command("reload", "re-read the configuration", Handler(node, "reload"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``edgecoderctl``; returns the exit code."""
    args = _parser().parse_args(argv)
    if importlib.util.find_spec("dbus_fast") is None:
        print("edgecoderctl: dbus-fast is not installed", file=sys.stderr)
        return 1
    return _SESSION(args)


if __name__ == "__main__":
    sys.exit(main())
