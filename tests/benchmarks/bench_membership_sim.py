"""The membership core on a simulated network; prints JSON.

Run: ``.venv/bin/python tests/benchmarks/bench_membership_sim.py [N ...]`` (default
100 1000 10000; N = 10,000 takes about 40 CPU-minutes and 7 GiB: every node holds a
full view).

For each N (everyone bootstraps from one seed at once, 1-20 ms latency, 1 s periods):
rounds (periods) until every node sees every other; the same under 5 % loss, then over
the following 30 lossy periods the (observer, member) pairs falsely declared dead and
falsely suspected (summed over periods) and the bytes each node sends per period; the periods
from killing a node until every other node has declared it dead; and the bytes each node
sends per period, both while the mesh converges (peak) and once it has converged. Byte
counts include the signed peer record that travels with every alive entry. The issue's
goals: full view within 2·log2(N) periods, no false deaths at 5 % loss, per-node bytes per
period flat in N.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edgecoder.mesh.membership import DEAD
from tests.benchmarks.sim_network import SimNetwork

PERIOD_MS = 1000
LOSSY_PERIODS = 30


def _converge(n: int, loss: float, limit: int) -> tuple[SimNetwork, int | None, int]:
    net = SimNetwork(n, seed=n, loss=loss)
    net.start()
    peak = 0
    for period in range(1, limit + 1):
        before = sum(net.bytes_sent.values())
        net.run_until(period * PERIOD_MS)
        peak = max(peak, (sum(net.bytes_sent.values()) - before) // n)
        if net.full_view():
            return net, period, peak
    return net, None, peak


def _progress(n: int, phase: str, **values: Any) -> None:
    # Each phase as soon as it is measured: a 10,000-node run takes a long time.
    print(json.dumps({"nodes": n, "phase": phase, **values}), file=sys.stderr, flush=True)


def measure(n: int) -> dict[str, Any]:
    started = time.perf_counter()
    goal = math.ceil(2 * math.log2(n))
    net, rounds, peak = _converge(n, 0.0, limit=max(40, 3 * goal))
    _progress(n, "join", rounds_to_full_view=rounds, goal_rounds=goal, peak_bytes=peak)
    # Let the join's news finish its retransmissions, then measure a quiet mesh.
    net.run_until(net.now_ms + 30 * PERIOD_MS)
    before = sum(net.bytes_sent.values())
    window = 10
    net.run_until(net.now_ms + window * PERIOD_MS)
    steady = (sum(net.bytes_sent.values()) - before) / n / window
    news = sum(node.news_pending for node in net.nodes.values()) / n
    _progress(n, "converged", bytes_per_node_per_period=round(steady),
              news_pending_per_node=round(news, 1))  # fmt: skip
    net.down.add("n1")
    killed_at = net.now_ms
    detected = None
    for period in range(1, 120):
        net.run_until(killed_at + period * PERIOD_MS)
        if all(state in {DEAD, None} for state in net.states_of("id1")):
            detected = period
            break
    _progress(n, "kill", periods_to_detect=detected)
    del net
    lossy, lossy_rounds, _ = _converge(n, 0.05, limit=max(40, 3 * goal))
    _progress(n, "join at 5 % loss", rounds_to_full_view=lossy_rounds)
    false_deaths = suspected = 0
    before = sum(lossy.bytes_sent.values())
    for _ in range(LOSSY_PERIODS):
        lossy.run_until(lossy.now_ms + PERIOD_MS)
        false_deaths += lossy.false_deaths()
        suspected += lossy.suspected_pairs()
    lossy_bytes = (sum(lossy.bytes_sent.values()) - before) / n / LOSSY_PERIODS
    return {
        "nodes": n,
        "rounds_to_full_view": rounds,
        "goal_rounds": goal,
        "rounds_to_full_view_at_5pct_loss": lossy_rounds,
        "false_dead_pair_rounds_at_5pct_loss": false_deaths,
        "suspect_pair_periods_at_5pct_loss": suspected,
        "bytes_per_node_per_period_at_5pct_loss": round(lossy_bytes),
        "periods_to_detect_killed_node_everywhere": detected,
        "bytes_per_node_per_period_converged": round(steady),
        "news_pending_per_node_converged": round(news, 1),
        "bytes_per_node_per_period_peak_while_joining": peak,
        "wall_s": round(time.perf_counter() - started, 1),
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


if __name__ == "__main__":
    sizes = [int(a) for a in sys.argv[1:]] or [100, 1000, 10000]
    results = []
    for size in sizes:
        results.append(measure(size))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"benchmark": "SWIM membership on a simulated network",
                      "results": results}, indent=2))  # fmt: skip
