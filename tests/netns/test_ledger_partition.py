"""The credit economy across a partition (docs/ledger.md §3, §6): six nodes in network
namespaces, the real model on every worker, one economy founded when they meet.

The LAN splits 3/3, each half (a requester and two workers) runs its own tasks, then it
heals: every node ends up holding every chain, all six agree on every balance, the
network sums to its allowances, and between each requester and each worker what was
paid is what was earned — nothing lost, nothing counted twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgecoder.errors import LedgerError
from edgecoder.ledger.rules import ChainState
from edgecoder.ledger.vouches import parse_vouch
from edgecoder.storage import ledger_rows
from tests.netns.lan import Lan, netns_available
from tests.netns.test_lan_tasks import MODEL, Node, start_all
from tests.waiting import wait_until

pytestmark = [pytest.mark.netns, pytest.mark.integration, pytest.mark.slow, pytest.mark.model]

HALVES = ({0, 1, 2}, {3, 4, 5})
ORIGINS = (0, 3)
TASKS_PER_HALF = 6


def chat(node: Node, content: str) -> int:
    body = {"model": MODEL, "max_tokens": 4, "ignore_eos": True, "temperature": 0,
            "messages": [{"role": "user", "content": content}]}  # fmt: skip
    headers = {"Authorization": f"Bearer {node.key}"}
    response = httpx.post(f"{node.agent.api_url}/v1/chat/completions", json=body,
                          headers=headers, timeout=120)  # fmt: skip
    return response.status_code


def chains_held(node: Node) -> dict[str, ChainState]:
    """Every chain in ``node``'s database, folded (its vouches resolve the allowances)."""
    db = sqlite3.connect(f"file:{node.agent.data_dir / 'edgecoder.db'}?mode=ro", uri=True)
    try:
        vouches = {}
        for document in ledger_rows.vouches(db):
            vouch = parse_vouch(document)
            vouches[vouch.hash] = vouch
        authors = [r[0] for r in db.execute("SELECT DISTINCT node FROM ledger_entries")]
        entries = {a: ledger_rows.entries_of(db, a) for a in authors}
    finally:
        db.close()

    def lookup(ref: str, author: str) -> int | None:
        vouch = vouches.get(ref)
        return vouch.amount if vouch is not None and vouch.node == author else None

    return {a: ChainState.fold(a, e, lookup) for a, e in entries.items()}


def heads_of(node: Node) -> dict[str, tuple[int, str]]:
    try:
        return {a: (s.seq, s.head) for a, s in chains_held(node).items()}
    except LedgerError:
        return {}


def sees(node: Node, workers: int) -> Callable[[], bool]:
    return lambda: node.workers_seen() == workers


def test_a_partitioned_economy_converges_with_nothing_lost_or_counted_twice(
    tmp_path: Path,
) -> None:
    reason = netns_available()
    if reason is not None:
        pytest.skip(f"network namespaces unavailable: {reason}")
    lan = Lan(6)
    nodes = [Node(lan, i, tmp_path, slots=0 if i in ORIGINS else 1) for i in range(6)]
    try:
        start_all(nodes)
        origins = [nodes[i] for i in ORIGINS]
        for origin in origins:
            wait_until(sees(origin, 4), 120, "every worker seen")
            wait_until(origin.funded, 120, "the requester's allowance")
        wait_until(lambda: len({n.admin("/admin/ledger")["network_key"] for n in nodes}) == 1,
                   60, "one economy")  # fmt: skip

        lan.partition([set(h) for h in HALVES])
        for origin in origins:
            wait_until(sees(origin, 2), 120, "the other half gone")
        for half, origin in zip(HALVES, origins, strict=True):
            for i in range(TASKS_PER_HALF):
                assert chat(origin, f"half {min(half)} task {i}") == 200

        lan.partition(None)
        for origin in origins:
            wait_until(sees(origin, 4), 120, "the mesh whole again")

        def converged() -> bool:
            own = {n.node_id: n.admin("/admin/ledger")["head"] for n in nodes}
            expected = {k: (h["seq"], h["hash"]) for k, h in own.items() if h["seq"]}
            return all(heads_of(n) == expected for n in nodes)

        try:
            wait_until(converged, 180, "every node holding every chain")
        except AssertionError as exc:
            own = {n.node_id: n.admin("/admin/ledger")["head"]["seq"] for n in nodes}
            held = {n.node_id: {k: v[0] for k, v in heads_of(n).items()} for n in nodes}
            raise AssertionError(f"{exc}: heads {own}, held {held}") from None
        views = [chains_held(n) for n in nodes]
        balances = [{a: (s.balance, s.held) for a, s in v.items()} for v in views]
        assert all(b == balances[0] for b in balances)  # all six agree
        chains: dict[str, Any] = views[0]
        allowances = sum(s.allowance for s in chains.values())
        assert sum(s.balance for s in chains.values()) == allowances  # zero-sum
        workers = [n.node_id for i, n in enumerate(nodes) if i not in ORIGINS]
        paid_any = 0
        for origin in origins:
            for worker in workers:
                paid = chains[origin.node_id].total("spend", worker)
                assert paid == chains[worker].total("earn", origin.node_id)
                paid_any += paid
        assert paid_any > 0
        # Each half worked for its own requester only: the partition held.
        for half, origin in zip(HALVES, origins, strict=True):
            outside = [nodes[i].node_id for i in range(6) if i not in half]
            assert all(chains[origin.node_id].total("spend", w) == 0 for w in outside)
    finally:
        for node in nodes:
            node.agent.close()
        lan.close()
