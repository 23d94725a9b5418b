"""A simulated clock and network for the sans-I/O mesh core: latency, loss, partitions, kills.

Deterministic for a seed. Used by the simulation benchmark and the membership tests.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from edgecoder.mesh.membership import Membership, MembershipConfig, Send


@dataclass(order=True)
class _Delivery:
    at_ms: int
    order: int
    address: str = field(compare=False)
    message: dict[str, Any] = field(compare=False)


class SimNetwork:
    """N nodes exchanging messages with latency and loss, on a simulated clock."""

    def __init__(self, count: int, *, seed: int = 1, loss: float = 0.0,
                 latency_ms: tuple[int, int] = (1, 20),
                 config: MembershipConfig | None = None) -> None:  # fmt: skip
        self.rng = random.Random(seed)
        self.loss = loss
        self.latency_ms = latency_ms
        self.now_ms = 0
        self.nodes: dict[str, Membership] = {}
        self.down: set[str] = set()
        self.cut: set[str] = set()
        self.bytes_sent: dict[str, int] = {}
        self._queue: list[_Delivery] = []
        self._order = 0
        for i in range(count):
            address = f"n{i}"
            rng = random.Random(self.rng.random())
            self.nodes[address] = Membership(f"id{i}", address, config, rng)
            self.bytes_sent[address] = 0

    def start(self, seeds: Iterable[str] = ("n0",)) -> None:
        seed_list = list(seeds)
        for address, node in self.nodes.items():
            self._send(address, node.join([s for s in seed_list if s != address], self.now_ms))

    def _send(self, sender: str, actions: list[Send]) -> None:
        for action in actions:
            self.bytes_sent[sender] += len(json.dumps(action.message))
            if sender in self.cut or action.address in self.cut:
                continue
            if self.rng.random() < self.loss:
                continue
            delay = self.rng.randint(*self.latency_ms)
            self._order += 1
            heapq.heappush(self._queue, _Delivery(self.now_ms + delay, self._order,
                                                  action.address, action.message))  # fmt: skip

    def run_until(self, end_ms: int, step_ms: int = 50) -> None:
        """Advance the clock, delivering messages and ticking every live node each step."""
        while self.now_ms < end_ms:
            step_end = self.now_ms + step_ms
            while self._queue and self._queue[0].at_ms <= step_end:
                delivery = heapq.heappop(self._queue)
                self.now_ms = max(self.now_ms, delivery.at_ms)
                if delivery.address in self.down or delivery.address not in self.nodes:
                    continue
                node = self.nodes[delivery.address]
                self._send(delivery.address, node.receive(delivery.message, self.now_ms))
            self.now_ms = step_end
            for address, node in self.nodes.items():
                if address not in self.down:
                    self._send(address, node.tick(self.now_ms))

    def full_view(self) -> bool:
        """Whether every live node sees every other live node as alive or suspect."""
        live = {n.node_id for a, n in self.nodes.items() if a not in self.down}
        return all(
            node.alive_ids() >= live - {node.node_id}
            for address, node in self.nodes.items() if address not in self.down
        )  # fmt: skip
