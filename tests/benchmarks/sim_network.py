"""A simulated clock and network for the sans-I/O mesh core: latency, loss, partitions, kills.

Deterministic for a seed. Used by the simulation benchmark and the membership tests.

In the running mesh every *alive* entry travels with its node's signed peer record, which
is what lets a directory vouch for it. Here one shared address book stands in for the
records every node would hold, and each alive entry a message carries is charged
:data:`RECORD_BYTES` on top of the message's own JSON, so byte counts include the records.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from edgecoder.mesh.membership import ALIVE, DEAD, Membership, MembershipConfig, Send

RECORD_BYTES = 520
"""The size of a signed peer record on the wire (canonical JSON, measured)."""


@dataclass(order=True)
class _Delivery:
    at_ms: int
    order: int
    address: str = field(compare=False)
    message: dict[str, Any] = field(compare=False)


class AddressBook:
    """The simulator's directory: every node's address, as its signed record would say."""

    def __init__(self) -> None:
        self.addresses: dict[str, str] = {}

    def vouch(self, node_id: str, incarnation: int, advert: int) -> bool:
        return node_id in self.addresses

    def address(self, node_id: str) -> str | None:
        return self.addresses.get(node_id)


def message_bytes(message: dict[str, Any]) -> int:
    """Bytes on the wire: the JSON message plus the records the transport attaches.

    The transport attaches the record of every alive entry the message carries, the
    sender's own record to anti-entropy messages (the first contact with a seed is one) and
    the target's to an indirect ping request.
    """
    alive = str(message["t"]).startswith("sync") + (message["t"] == "ping_req")
    alive += sum(1 for u in message.get("updates", ()) if u[2] == ALIVE)
    alive += sum(1 for e in message.get("entries", ()) if e[2] == ALIVE)
    return len(json.dumps(message, separators=(",", ":"))) + alive * RECORD_BYTES


class SimNetwork:
    """N nodes exchanging messages with latency and loss, on a simulated clock."""

    def __init__(self, count: int, *, seed: int = 1, loss: float = 0.0,
                 latency_ms: tuple[int, int] = (1, 20),
                 config: MembershipConfig | None = None) -> None:  # fmt: skip
        self.rng = random.Random(seed)
        self.loss = loss
        self.latency_ms = latency_ms
        self.now_ms = 0
        self.book = AddressBook()
        self.nodes: dict[str, Membership] = {}
        self.down: set[str] = set()
        self.cut: set[str] = set()
        self.halves: list[set[str]] | None = None
        """A partition: messages cross between no two of these groups of addresses."""
        self.bytes_sent: dict[str, int] = {}
        self._queue: list[_Delivery] = []
        self._order = 0
        for i in range(count):
            address = f"n{i}"
            self.book.addresses[f"id{i}"] = address
            rng = random.Random(self.rng.random())
            self.nodes[address] = Membership(f"id{i}", address, self.book, config, rng)
            self.bytes_sent[address] = 0

    def start(self, seeds: Iterable[str] = ("n0",)) -> None:
        seed_list = list(seeds)
        for address, node in self.nodes.items():
            self._send(address, node.join([s for s in seed_list if s != address], self.now_ms))

    def restart(self, address: str) -> None:
        """A killed node comes back on the same identity with a newer incarnation."""
        old = self.nodes[address]
        rng = random.Random(self.rng.random())
        self.nodes[address] = Membership(old.node_id, address, self.book, old.config, rng,
                                         incarnation=old.incarnation + 1)  # fmt: skip
        self.down.discard(address)
        self._send(address, self.nodes[address].join(["n0"], self.now_ms))

    def _send(self, sender: str, actions: list[Send]) -> None:
        for action in actions:
            self.bytes_sent[sender] += message_bytes(action.message)
            if sender in self.cut or action.address in self.cut:
                continue
            if self.halves and not any({sender, action.address} <= h for h in self.halves):
                continue
            if self.loss and self.rng.random() < self.loss:
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
        up = [node for address, node in self.nodes.items() if address not in self.down]
        if not self.down:
            # Members only ever exist when vouched for, so counting is enough.
            return all(node.live_count == len(up) - 1 for node in up)
        live = {node.node_id for node in up}
        return all(node.alive_ids() >= live - {node.node_id} for node in up)

    def states_of(self, node_id: str) -> list[str | None]:
        """What every other live node believes about ``node_id``."""
        return [n.state_of(node_id) for a, n in self.nodes.items()
                if a not in self.down and n.node_id != node_id]  # fmt: skip

    def suspected_pairs(self) -> int:
        """(observer, member) pairs where a member is believed suspect."""
        return sum(node.suspect_count for a, node in self.nodes.items() if a not in self.down)

    def false_deaths(self) -> int:
        """(observer, member) pairs where a live member is believed dead."""
        if not self.down:  # every member is up: every dead entry is a false death
            return sum(node.dead_count for node in self.nodes.values())
        up_ids = {n.node_id for a, n in self.nodes.items() if a not in self.down}
        return sum(
            1
            for a, node in self.nodes.items() if a not in self.down
            for member_id in up_ids
            if node.state_of(member_id) == DEAD
        )  # fmt: skip
