"""The claim-delay protocol on a simulated clock and network; prints JSON, one line a scenario.

Run: ``.venv/bin/python tests/benchmarks/bench_claim_sim.py [WORKERS ORIGINS TASKS ...]``
(triples; default ``20 3 500 1000 10 5000``). For each size it runs the scenarios of
:func:`tests.benchmarks.sim_claims.scenarios` — clean, 5 % packet loss, 10 % of the
workers killed once a third of the tasks are done, 5 % partitioned, clocks skewed by up to
12 s, and loss with kills — each driving the agent's own pure state machines
(:mod:`edgecoder.tasks.offering`, :mod:`edgecoder.tasks.claiming`,
:mod:`edgecoder.tasks.relaying`) with the default ``[tasks]`` configuration, on a LAN
(1 ms round trips) with as many concurrent requests as 80 % of the workers.

Each line has ``scenario``, ``duplicate_executions`` (a (task, attempt) run by two
workers, or a task's output taken from two attempts: must be 0), ``lost_tasks`` (neither
done nor failed with a reason: must be 0), ``reexecutions`` (runs after a failover whose
earlier run may also have gone on: the price of a lease), ``claims_per_task``,
``attempts_per_task``, ``offers_per_task``, the workers' mean claim delay and the time
the protocol adds to the first token (p50/p99: from the request at the origin to its
first token there, less the worker's own time from grant to first token).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.sim_claims import ClaimSim, scenarios

DEFAULT = (20, 3, 500, 1000, 10, 5000)


def main(argv: list[str]) -> int:
    numbers = [int(a) for a in argv] or list(DEFAULT)
    if len(numbers) % 3:
        print("usage: bench_claim_sim.py [WORKERS ORIGINS TASKS ...]", file=sys.stderr)
        return 2
    failed = False
    for i in range(0, len(numbers), 3):
        workers, origins, tasks = numbers[i : i + 3]
        for scenario in scenarios(workers, origins, tasks):
            started = time.process_time()
            report = ClaimSim(scenario).run()
            report["cpu_s"] = round(time.process_time() - started, 1)
            print(json.dumps(report), flush=True)
            failed |= bool(report["duplicate_executions"] or report["lost_tasks"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
