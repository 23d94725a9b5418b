"""Real convergence on network namespaces beside the simulator's, for the same N; prints JSON.

Run as root: ``.venv/bin/python tests/benchmarks/bench_lan_convergence.py [N]`` (default 5).
Starts N agents, each in its own namespace on one switch, found by mDNS alone (1 s
protocol period; agents start one after another), and measures the seconds until every
agent lists every other as alive, from the last agent's READY and from the first's start;
then the simulator's periods to full view for the same N and period, from one seed.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.sim_network import SimNetwork
from tests.netns.lan import netns_available
from tests.netns.test_lan_mesh import PERIOD_MS, LanMesh


def real(n: int) -> tuple[float, float, str]:
    import tests.netns.test_lan_mesh as scenario

    scenario.NODES = n
    with tempfile.TemporaryDirectory() as root:
        mesh = LanMesh(Path(root))
        try:
            first = time.monotonic()
            mesh.start()
            started = time.monotonic()
            while not mesh.all_alive():
                time.sleep(0.05)
            done = time.monotonic()
            return done - started, done - first, mesh.lan.switch_kind
        finally:
            mesh.close()


def simulated(n: int) -> int | None:
    net = SimNetwork(n, seed=n)
    net.start()
    for period in range(1, 60):
        net.run_until(period * PERIOD_MS)
        if net.full_view():
            return period
    return None


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    reason = netns_available()
    if reason is not None:
        sys.exit(f"bench_lan_convergence: {reason}")
    seconds, total, switch = real(size)
    print(json.dumps({
        "benchmark": "membership convergence: real agents on namespaces vs the simulator",
        "nodes": size,
        "period_ms": PERIOD_MS,
        "real_seconds_to_full_view_after_last_ready": round(seconds, 2),
        "real_seconds_to_full_view_from_first_start": round(total, 2),
        "real_switch": switch,
        "simulated_periods_to_full_view": simulated(size),
    }, indent=2))  # fmt: skip
