"""``edgecoderctl``: manage the local agent over D-Bus, the way ``busctl`` talks to services.

Talks to ``org.edgecoder.Agent`` on the system bus (``--session``: the session bus, like
``busctl --user``). Exit codes: 0 done, 1 the agent refused (its message is printed),
2 bad usage, 3 the agent is not running (or no bus), 4 permission denied.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from edgecoder.adapters.control.names import BUS_NAME, INTERFACE, JOB_INTERFACE, OBJECT_PATH
from edgecoder.ledger.pricing import format_mc

__all__ = ("main",)


class CtlError(Exception):
    """A failure to report on stderr with an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _plain(value: Any) -> Any:
    """dbus-fast values (Variants inside dicts and lists) as plain Python data."""
    inner = getattr(value, "value", value)
    if isinstance(inner, dict):
        return {k: _plain(v) for k, v in inner.items()}
    if isinstance(inner, list):
        return [_plain(v) for v in inner]
    return inner


class Agent:
    """A connection to the agent's interface."""

    def __init__(self, session: bool) -> None:
        self.session = session
        self.bus: Any = None
        self.iface: Any = None

    async def __aenter__(self) -> Agent:
        from dbus_fast import BusType
        from dbus_fast.aio import MessageBus

        kind = "session" if self.session else "system"
        bus_type = BusType.SESSION if self.session else BusType.SYSTEM
        try:
            self.bus = await MessageBus(bus_type=bus_type).connect()
        except (OSError, ValueError) as exc:
            raise CtlError(f"cannot reach the {kind} bus: {exc}", 3) from None
        try:
            node = await self.bus.introspect(BUS_NAME, OBJECT_PATH)
        except Exception as exc:
            raise _translate(exc, kind) from None
        self.iface = self.bus.get_proxy_object(BUS_NAME, OBJECT_PATH, node).get_interface(INTERFACE)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.bus is not None:
            self.bus.disconnect()

    async def call(self, member: str, *args: Any) -> Any:
        """Call a method (``GetStatus``, ``SetMode``...) and return plain data."""
        name = "call_" + "".join("_" + c.lower() if c.isupper() else c for c in member).lstrip("_")
        try:
            return _plain(await getattr(self.iface, name)(*args))
        except Exception as exc:
            raise _translate(exc, "session" if self.session else "system") from None

    async def job(self, path: str) -> Any:
        """The proxy of a pull job's interface."""
        node = await self.bus.introspect(BUS_NAME, path)
        return self.bus.get_proxy_object(BUS_NAME, path, node).get_interface(JOB_INTERFACE)


def _translate(exc: Exception, kind: str) -> CtlError:
    from dbus_fast import DBusError

    if not isinstance(exc, DBusError):
        return CtlError(f"D-Bus call failed: {exc}", 1)
    if exc.type in ("org.freedesktop.DBus.Error.ServiceUnknown",
                    "org.freedesktop.DBus.Error.NameHasNoOwner"):  # fmt: skip
        return CtlError(f"the EdgeCoder agent is not running (no {BUS_NAME} on the {kind} bus)", 3)
    if exc.type == "org.freedesktop.DBus.Error.AccessDenied":
        return CtlError(
            f"permission denied by the {kind} bus policy: run as root or as a member of the "
            "edgecoder group",
            4,
        )
    return CtlError(exc.text or exc.type, 1)


# -- commands ------------------------------------------------------------------------------


async def _status(agent: Agent, args: argparse.Namespace) -> None:
    status = await agent.call("GetStatus")
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return
    for key in ("node_id", "status", "version", "mode", "default_model", "owner_busy",
                "uptime_s", "network"):  # fmt: skip
        print(f"{key:14}{status.get(key, '-')}")
    backend = json.loads(status["backend"]) if "backend" in status else {}
    mesh = json.loads(status["mesh"]) if "mesh" in status else {}
    print(f"{'backend':14}{backend.get('active') or 'none'} ({backend.get('state', '?')})")
    print(f"{'peers':14}{mesh.get('peer_count', 0)}")


async def _peers(agent: Agent, args: argparse.Namespace) -> None:
    peers = await agent.call("ListPeers")
    if args.json:
        print(json.dumps(peers, indent=2, sort_keys=True))
        return
    if not peers:
        print("no peers known")
    for peer in peers:
        models = ",".join(m.get("name", "?") for m in json.loads(peer.get("models", "[]")))
        print(f"{peer['node_id']}  {peer['state']:7}  {peer.get('url', '-')}  {models or '-'}")


async def _models(agent: Agent, args: argparse.Namespace) -> None:
    action = args.models_action
    if action == "list":
        models = await agent.call("ListModels")
        if args.json:
            print(json.dumps(models, indent=2, sort_keys=True))
            return
        for m in models:
            mark = "*" if m.get("default") else " "
            print(f"{mark} {m['name']:32} {m['backend']:9} ctx {m['context_length']}")
    elif action == "pull":
        await _pull(agent, args.name)
    elif action == "rm":
        await agent.call("RemoveModel", args.name)
        print(f"removed {args.name}")
    else:
        await agent.call("SetDefaultModel", args.name)
        print(f"default model: {args.name}")


async def _pull(agent: Agent, name: str) -> None:
    path = await agent.call("PullModel", name)
    job = await agent.job(path)
    done = asyncio.Event()

    def show(completed: int, total: int, percent: int, state: str) -> None:
        width = 30
        filled = width * percent // 100
        bar = "#" * filled + "-" * (width - filled)
        sys.stderr.write(f"\r{name} [{bar}] {percent:3d}% {completed}/{total} bytes")
        sys.stderr.flush()
        if state != "running":
            done.set()

    job.on_progress(show)
    while not done.is_set():
        state = await job.get_state()
        if state != "running":
            break
        try:
            await asyncio.wait_for(done.wait(), 1.0)
        except TimeoutError:
            continue
    sys.stderr.write("\n")
    if await job.get_state() == "failed":
        raise CtlError(f"pull of {name} failed: {await job.get_error()}", 1)
    print(f"pulled {name}")


async def _mode(agent: Agent, args: argparse.Namespace) -> None:
    if args.mode is None:
        print(await agent.iface.get_mode())
        return
    await agent.call("SetMode", args.mode)
    print(f"mode: {args.mode}")


async def _busy(agent: Agent, args: argparse.Namespace) -> None:
    await agent.call("SetOwnerBusy", args.state == "on")
    print(f"owner busy: {args.state}")


async def _keys(agent: Agent, args: argparse.Namespace) -> None:
    if args.keys_action == "create":
        print(await agent.call("CreateApiKey", args.name, args.admin))
    elif args.keys_action == "revoke":
        await agent.call("RevokeApiKey", args.name)
        print(f"revoked {args.name}")
    elif args.keys_action == "budget":
        budget = -1 if args.mc == "none" else _mc(args.mc)
        result = await agent.call("SetApiKeyBudget", args.name, budget)
        limit = result.get("budget_mc")
        print(f"{args.name}: budget {'none' if limit is None else format_mc(limit)}, "
              f"spent {format_mc(result.get('spent_mc', 0))}")  # fmt: skip
    else:
        keys = await agent.call("ListApiKeys")
        if args.json:
            print(json.dumps(keys, indent=2, sort_keys=True))
            return
        for k in keys:
            flags = ("admin " if k["admin"] else "") + ("" if k["active"] else "revoked")
            limit = "none" if k.get("budget_mc") is None else format_mc(k["budget_mc"])
            print(f"{k['name']:24} {flags.strip() or '-':14} budget {limit:>12}  "
                  f"spent {format_mc(k.get('spent_mc', 0))}")  # fmt: skip


async def _credits(agent: Agent, args: argparse.Namespace) -> None:
    ledger = await agent.call("GetLedger")
    ledger["head"] = json.loads(ledger.get("head", "{}"))
    ledger["entries"] = json.loads(ledger.get("entries", "[]"))
    if args.json:
        print(json.dumps(ledger, indent=2, sort_keys=True))
        return
    for key in ("balance", "held", "available", "allowance"):
        print(f"{key:11}{format_mc(int(ledger.get(key, 0)))}")
    head = ledger["head"]
    print(f"{'head':11}#{head.get('seq', 0)} {str(head.get('hash', ''))[:16]}")
    print(f"{'verified':11}{'yes' if ledger.get('verified') else 'NO'}")
    for entry in ledger["entries"][:10]:
        body = entry["body"]
        print(
            f"  #{body['seq']:<6} {body['kind']:9} {format_mc(body['amount']):>12}  "
            f"{str(body['party'])[:12]}"
        )


def _mc(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise CtlError(
            f"a budget is a whole number of millicredits or 'none', not {text!r}", 2
        ) from None
    if value < 0:
        raise CtlError("a budget is 0 or more millicredits ('none': no limit)", 2)
    return value


async def _reload(agent: Agent, args: argparse.Namespace) -> None:
    result = await agent.call("Reload")
    print(f"applied: {', '.join(result.get('applied', [])) or 'nothing'}")
    if result.get("restart_needed"):
        print(f"restart needed for: {', '.join(result['restart_needed'])}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgecoderctl", description="Manage the local EdgeCoder agent over D-Bus."
    )
    parser.add_argument("--session", action="store_true", help="use the session bus")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str, run: Callable[..., Awaitable[None]]) -> Any:
        sub = commands.add_parser(name, help=help_text)
        sub.set_defaults(run=run)
        return sub

    command("status", "the node's status", _status).add_argument("--json", action="store_true")
    command("peers", "the mesh peers it knows", _peers).add_argument("--json", action="store_true")
    models = command("models", "list, pull, remove models; set the default", _models)
    actions = models.add_subparsers(dest="models_action", required=True)
    actions.add_parser("list").add_argument("--json", action="store_true")
    for action in ("pull", "rm", "default"):
        actions.add_parser(action).add_argument("name")
    command("mode", "show or set the mode", _mode).add_argument(
        "mode", nargs="?", choices=("mesh", "local-only")
    )
    command("busy", "say whether the owner uses the machine", _busy).add_argument(
        "state", choices=("on", "off")
    )
    keys = command("keys", "create, list, revoke API keys", _keys)
    key_actions = keys.add_subparsers(dest="keys_action", required=True)
    create = key_actions.add_parser("create")
    create.add_argument("name")
    create.add_argument("--admin", action="store_true")
    key_actions.add_parser("list").add_argument("--json", action="store_true")
    key_actions.add_parser("revoke").add_argument("name")
    budget = key_actions.add_parser("budget", help="a key's budget in mc ('none': no limit)")
    budget.add_argument("name")
    budget.add_argument("mc", metavar="MC|none")
    command("credits", "this node's credits and newest ledger entries", _credits).add_argument(
        "--json", action="store_true"
    )
    command("reload", "re-read the configuration", _reload)
    return parser


async def _run(args: argparse.Namespace) -> None:
    async with Agent(args.session) as agent:
        await args.run(agent, args)


def main(argv: list[str] | None = None) -> int:
    """Run ``edgecoderctl``; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        import dbus_fast  # noqa: F401
    except ImportError:
        print("edgecoderctl: dbus-fast is not installed", file=sys.stderr)
        return 1
    try:
        asyncio.run(_run(args))
    except CtlError as exc:
        print(f"edgecoderctl: {exc}", file=sys.stderr)
        return exc.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
