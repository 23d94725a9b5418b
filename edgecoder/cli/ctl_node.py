"""``edgecoderctl`` commands about the node: status, peers, models, mode, owner-busy, reload.

Each takes the connected agent and the parsed arguments; a refusal is a
:class:`~edgecoder.cli.ctl_bus.CtlError`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from edgecoder.cli.ctl_bus import Agent, CtlError

__all__ = ("busy", "mode", "models", "peers", "reload", "status")


async def status(agent: Agent, args: argparse.Namespace) -> None:
    """Print the node's status (``GetStatus``), or its JSON."""
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


async def peers(agent: Agent, args: argparse.Namespace) -> None:
    """Print the peers the node knows (``ListPeers``), or their JSON."""
    peers = await agent.call("ListPeers")
    if args.json:
        print(json.dumps(peers, indent=2, sort_keys=True))
        return
    if not peers:
        print("no peers known")
    for peer in peers:
        models = ",".join(m.get("name", "?") for m in json.loads(peer.get("models", "[]")))
        print(f"{peer['node_id']}  {peer['state']:7}  {peer.get('url', '-')}  {models or '-'}")


async def models(agent: Agent, args: argparse.Namespace) -> None:
    """List, pull (with a progress bar on stderr), remove a model, or set the default."""
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


async def mode(agent: Agent, args: argparse.Namespace) -> None:
    """Print the mode, or set it."""
    if args.mode is None:
        print(await agent.iface.get_mode())
        return
    await agent.call("SetMode", args.mode)
    print(f"mode: {args.mode}")


async def busy(agent: Agent, args: argparse.Namespace) -> None:
    """Say whether the owner uses the machine (``SetOwnerBusy``)."""
    await agent.call("SetOwnerBusy", args.state == "on")
    print(f"owner busy: {args.state}")


async def reload(agent: Agent, args: argparse.Namespace) -> None:
    """Re-read the configuration; print what applied and what needs a restart."""
    result = await agent.call("Reload")
    print(f"applied: {', '.join(result.get('applied', [])) or 'nothing'}")
    if result.get("restart_needed"):
        print(f"restart needed for: {', '.join(result['restart_needed'])}")
