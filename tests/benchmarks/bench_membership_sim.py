"""The membership core on a simulated network; prints JSON.

Run: ``.venv/bin/python tests/benchmarks/bench_membership_sim.py [N ...]`` (default 100 1000).

For each N (everyone bootstraps from one seed, 1-20 ms latency, 1 s protocol period):
rounds (periods) until every node sees every other; under 5 % loss, the share of
(observer, member) pairs ever declared dead falsely and ever suspected falsely; the
periods from killing a node until every other node has declared it dead; and bytes each
node sends per period once converged. The issue's goals: full view within 2·log2(N)
periods, no false deaths at 5 % loss, per-node bytes per period flat in N.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edgecoder.mesh.membership import DEAD, SUSPECT
from tests.benchmarks.sim_network import SimNetwork

PERIOD_MS = 1000


def _converge(n: int, loss: float, limit_periods: int) -> tuple[SimNetwork, int | None]:
    net = SimNetwork(n, seed=n, loss=loss)
    net.start()
    for period in range(1, limit_periods + 1):
        net.run_until(period * PERIOD_MS)
        if net.full_view():
            return net, period
    return net, None


def measure(n: int) -> dict[str, Any]:
    started = time.perf_counter()
    goal = math.ceil(2 * math.log2(n))
    net, rounds = _converge(n, 0.0, limit_periods=max(60, 4 * goal))
    before = dict(net.bytes_sent)
    window = 10
    net.run_until(net.now_ms + window * PERIOD_MS)
    per_node = sum(net.bytes_sent[a] - before[a] for a in net.nodes) / n / window
    # A killed node: periods until every other node has declared it dead.
    net.down.add("n1")
    killed_at = net.now_ms
    detected = None
    for period in range(1, 120):
        net.run_until(killed_at + period * PERIOD_MS)
        states = [node.state_of("id1") for a, node in net.nodes.items() if a != "n1"]
        if all(state in {DEAD, None} for state in states):
            detected = period
            break
    lossy, lossy_rounds = _converge(n, 0.05, limit_periods=max(60, 4 * goal))
    falsely_dead = falsely_suspect = 0
    for _ in range(30):
        lossy.run_until(lossy.now_ms + PERIOD_MS)
        for node in lossy.nodes.values():
            for member in node.members():
                falsely_dead += member.state == DEAD
                falsely_suspect += member.state == SUSPECT
    pairs = n * (n - 1) * 30
    return {
        "nodes": n,
        "rounds_to_full_view": rounds,
        "goal_rounds": goal,
        "rounds_to_full_view_at_5pct_loss": lossy_rounds,
        "false_dead_pair_rounds_at_5pct_loss": falsely_dead,
        "false_suspect_share_at_5pct_loss": round(falsely_suspect / pairs, 5),
        "periods_to_detect_killed_node_everywhere": detected,
        "bytes_per_node_per_period": round(per_node),
        "wall_s": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    sizes = [int(a) for a in sys.argv[1:]] or [100, 1000]
    print(json.dumps({"benchmark": "SWIM membership on a simulated network",
                      "results": [measure(n) for n in sizes]}, indent=2))  # fmt: skip
