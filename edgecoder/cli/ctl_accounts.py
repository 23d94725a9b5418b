"""``edgecoderctl`` commands about accounts: API keys and their budgets, this node's credits.

Amounts are millicredits, shown as credits (:func:`edgecoder.ledger.pricing.format_mc`).
"""

from __future__ import annotations

import argparse
import json

from edgecoder.cli.ctl_bus import Agent, CtlError
from edgecoder.ledger.pricing import format_mc

__all__ = ("credits", "keys")


async def keys(agent: Agent, args: argparse.Namespace) -> None:
    """Create, list or revoke an API key, or set its budget."""
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
        listed = await agent.call("ListApiKeys")
        if args.json:
            print(json.dumps(listed, indent=2, sort_keys=True))
            return
        for k in listed:
            flags = ("admin " if k["admin"] else "") + ("" if k["active"] else "revoked")
            limit = "none" if k.get("budget_mc") is None else format_mc(k["budget_mc"])
            print(f"{k['name']:24} {flags.strip() or '-':14} budget {limit:>12}  "
                  f"spent {format_mc(k.get('spent_mc', 0))}")  # fmt: skip


async def credits(agent: Agent, args: argparse.Namespace) -> None:
    """Print this node's balance, head and newest entries (``GetLedger``), or JSON."""
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
