"""The ``edgecoder`` command line: every command, its arguments and help, and its handler.

Building it imports no command's implementation: each handler is a :class:`Handler`
naming the ``*_cmd`` module that holds it, imported only when that command runs. So the
commands the appliance runs at boot (``keys init``, ``setup-code``) and ``--help`` load
what they use, not the daemon, the web stack and the ledger (docs/cli.md, "Start-up
cost"). Keep it that way: import nothing here that a command's run needs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NoReturn

from edgecoder.cli.handler import Handler
from edgecoder.cli.options import KEY_VARIABLE, add_admin_options, add_config_option
from edgecoder.config.model import BACKENDS, DBUS_BUSES, EVENT_LOOPS, LOG_LEVELS, TASK_MODES

__all__ = ("CODE_FILE", "EXIT_USAGE", "ISSUE_FILE", "build_parser")

EXIT_USAGE = 2
CODE_FILE = Path("/var/lib/edgecoder-setup/code")
"""Where ``setup-code`` keeps the code, root-only."""
ISSUE_FILE = Path("/etc/issue.d/50-edgecoder-setup.issue")
"""The agetty issue snippet ``setup-code`` shows the code in."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full ``edgecoder`` command line; each command sets ``handler``."""
    parser = _Parser(
        prog="edgecoder",
        description="EdgeCoder: AI coding assistance from a mesh of office machines.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    _agent(commands)
    version = commands.add_parser("version", help="print the version and which core is in use")
    version.set_defaults(handler=Handler("version_cmd", "run"))
    _status(commands)
    _keys(commands)
    _models(commands)
    _mesh(commands)
    _peers(commands)
    _tasks(commands)
    _setup_code(commands)
    _credits(commands)
    return parser


def _agent(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "agent", help="run this machine's node (coordinator, worker and inference host)"
    )
    add_config_option(parser)
    parser.add_argument("--data-dir", metavar="DIR", help="where the key and database live")
    parser.add_argument("--mesh-port", metavar="PORT", help="node-to-node listener (4301)")
    parser.add_argument(
        "--api-port", metavar="PORT", help="IDE, browser and script listener (4304)"
    )
    parser.add_argument("--bind", metavar="ADDR", help="address both listeners bind (0.0.0.0)")
    parser.add_argument(
        "--bootstrap", metavar="URL", action="append", help="a peer to contact (repeatable)"
    )
    parser.add_argument("--backend", choices=BACKENDS, help="inference backend (auto)")
    parser.add_argument("--model", metavar="NAME", help="default model")
    parser.add_argument(
        "--no-mdns", dest="mdns", action="store_false", default=None, help="no LAN discovery"
    )
    parser.add_argument(
        "--network", metavar="NAME", help="mesh name that separates meshes on a LAN"
    )
    parser.add_argument(
        "--mode", choices=TASK_MODES, help="mesh (offload when peers serve better) or local-only"
    )
    parser.add_argument(
        "--worker-slots", metavar="N", help="peer tasks run here at once (1; 0 = requester only)"
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="log verbosity (info)")
    parser.add_argument(
        "--dbus", choices=DBUS_BUSES, help="bus for org.edgecoder.Agent (system; none = off)"
    )
    parser.add_argument("--loop", choices=EVENT_LOOPS, help="event loop implementation (uvloop)")
    parser.set_defaults(handler=Handler("agent_cmd", "run"))


def _status(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "status", help="show the state of the node running on this machine"
    )
    add_config_option(parser)
    parser.add_argument("--url", help="the node's client listener (default: from the config)")
    parser.add_argument("--json", action="store_true", help="print the raw health document")
    parser.set_defaults(handler=Handler("status_cmd", "run"))


def _keys(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser("keys", help="node identity and API keys")
    keys = parser.add_subparsers(dest="keys_command", metavar="ACTION", parser_class=type(parser))
    keys.required = True

    # The node's own key and its users' API keys are two modules: first boot runs
    # ``keys init``, which needs no database.
    def sub(name: str, help_text: str, handler: Handler) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = keys.add_parser(name, help=help_text)
        add_config_option(p)
        p.add_argument("--data-dir", metavar="DIR", help="the node's data directory")
        p.set_defaults(handler=handler)
        return p

    init_parser = sub("init", "create the node key if there is none; print the node id",
                      Handler("identity_cmd", "init"))  # fmt: skip
    init_parser.add_argument("--json", action="store_true", help="print JSON")
    show_parser = sub("show", "print the node id and public key", Handler("identity_cmd", "show"))
    show_parser.add_argument("--json", action="store_true", help="print JSON")
    create_parser = sub("create", "create an API key and print it (shown once)",
                        Handler("api_keys_cmd", "create"))  # fmt: skip
    create_parser.add_argument("name", help="the key's name: its credit account")
    create_parser.add_argument("--admin", action="store_true", help="may manage the node")
    list_parser = sub("list", "list API keys (never the keys themselves)",
                      Handler("api_keys_cmd", "list_keys"))  # fmt: skip
    list_parser.add_argument("--json", action="store_true", help="print JSON")
    revoke_parser = sub("revoke", "revoke an API key by name", Handler("api_keys_cmd", "revoke"))
    revoke_parser.add_argument("name", help="the key's name")
    budget_parser = sub("budget", "give a key's credit account a budget",
                        Handler("api_keys_cmd", "budget"))  # fmt: skip
    budget_parser.add_argument("name", help="the key's name")
    budget_parser.add_argument(
        "mc", metavar="MC", type=_budget,
        help="the most its requests may spend on peers' work, in millicredits "
        "(1 credit = 1000); 'none': no limit",
    )  # fmt: skip


def _budget(text: str) -> int | None:
    if text == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a budget is a whole number of millicredits or 'none', not {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError("a budget is 0 or more millicredits ('none': no limit)")
    return value


def _models(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "models", help="models of the embedded backend"
    )
    models = parser.add_subparsers(
        dest="models_command", metavar="ACTION", parser_class=type(parser)
    )
    models.required = True
    add_parser = models.add_parser("add", help="import a GGUF model file")
    add_parser.add_argument("file", type=Path, help="the .gguf file")
    add_parser.add_argument("--name", help="name to serve it under (default: from the file name)")
    add_parser.set_defaults(handler=Handler("models_cmd", "add"))
    list_parser = models.add_parser("list", help="list imported models")
    list_parser.add_argument("--json", action="store_true", help="print JSON")
    list_parser.set_defaults(handler=Handler("models_cmd", "list_models"))
    for sub in (add_parser, list_parser):
        add_config_option(sub)
        sub.add_argument("--data-dir", metavar="DIR", help="the node's data directory")


def _mesh(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser("mesh", help="talk to other nodes")
    mesh = parser.add_subparsers(dest="mesh_command", metavar="ACTION", parser_class=type(parser))
    mesh.required = True
    req = mesh.add_parser("request", help="send a request signed with this node's key")
    req.add_argument("url", help="the peer's mesh listener, e.g. http://10.0.0.5:4301")
    req.add_argument("method", help="HTTP method, e.g. POST")
    req.add_argument("path", help="path with query, e.g. /mesh/ping")
    req.add_argument("--body", default="", help="JSON body (sent in canonical form)")
    req.add_argument(
        "--dry-run", action="store_true", help="print the signed request as JSON; send nothing"
    )
    add_config_option(req)
    req.add_argument("--data-dir", metavar="DIR", help="this node's data directory")
    req.set_defaults(handler=Handler("mesh_cmd", "request"))


def _peers(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "peers", help="list the mesh peers the local node knows (needs an admin key)"
    )
    add_config_option(parser)
    add_admin_options(parser)
    parser.set_defaults(handler=Handler("peers_cmd", "run"))


def _tasks(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "tasks", help="list recent mesh tasks, offered and run here (needs an admin key)"
    )
    add_config_option(parser)
    add_admin_options(parser)
    parser.add_argument("--limit", type=int, default=20, help="how many of each (20)")
    parser.set_defaults(handler=Handler("tasks_cmd", "run"))


def _setup_code(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "setup-code", help="make or remove the one-time setup code (appliance, as root)"
    )
    add_config_option(parser)
    parser.add_argument("--data-dir", metavar="DIR", help="the node's data directory")
    parser.add_argument(
        "--code-file",
        type=Path,
        default=CODE_FILE,
        metavar="FILE",
        help=f"where the code is kept, root-only (default {CODE_FILE})",
    )
    parser.add_argument(
        "--issue-file",
        type=Path,
        default=ISSUE_FILE,
        metavar="FILE",
        help=f"agetty issue snippet showing it (default {ISSUE_FILE})",
    )
    parser.add_argument("--console", action="store_true",
                        help="also write it to every active kernel console")  # fmt: skip
    parser.set_defaults(handler=Handler("setup_cmd", "run"))


def _credits(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "credits", help="this node's credits and ledger (verify, vouch)"
    )
    _credits_options(parser, nested=False)
    parser.add_argument("--limit", type=int, default=10, help="recent entries to show (10)")
    parser.set_defaults(handler=Handler("credits_cmd", "run"))
    actions = parser.add_subparsers(dest="credits_action", metavar="ACTION",
                                    parser_class=type(parser))  # fmt: skip
    check = actions.add_parser("verify", help="verify every chain this node holds")
    _credits_options(check, nested=True)
    check.set_defaults(handler=Handler("credits_cmd", "verify"))
    grant = actions.add_parser("vouch", help="vouch for a node's starting allowance")
    grant.add_argument("node", metavar="NODE_ID", help="the node to vouch for")
    _credits_options(grant, nested=True)
    grant.set_defaults(handler=Handler("credits_cmd", "vouch"))


def _credits_options(parser: argparse.ArgumentParser, nested: bool) -> None:
    # An action's own options default to nothing (SUPPRESS), so that the same options
    # given before the action ("credits --json verify") are not overwritten by them.
    default: Any = argparse.SUPPRESS if nested else None
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        default=default,
        help="main config file (default: /etc/edgecoder/edgecoder.toml)",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=default,
        help="the node's data directory (read when no node answers)",
    )
    parser.add_argument(
        "--url", default=default, help="the node's client listener (default: from the config)"
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        default=default,
        help=f"an admin API key (default: ${KEY_VARIABLE})",
    )
    parser.add_argument("--json", action="store_true",
                        default=argparse.SUPPRESS if nested else False,
                        help="print the raw JSON")  # fmt: skip
