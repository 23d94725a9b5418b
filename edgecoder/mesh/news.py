"""The queue of membership news waiting to be piggybacked on outgoing messages.

Each item is sent a fixed number of times, at most ``per_message`` per message: least-sent
first and, among items sent equally often, newest first (so a refutation does not wait
behind a backlog of join announcements). Newer news about a node replaces older news about
it. The queue holds at most ``capacity`` items; past that the most-sent ones are dropped
(anti-entropy still carries what they said), so memory stays bounded however many nodes
join at once.
"""

from __future__ import annotations

__all__ = ("NewsQueue",)

Update = list[object]
"""``[node_id, incarnation, state, advert]`` as it travels on the wire."""


class NewsQueue:
    """News items keyed by node id, each with how many more times it will be sent."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._left: dict[str, int] = {}
        self._by_left: dict[int, dict[str, Update]] = {}

    def __len__(self) -> int:
        return len(self._left)

    def put(self, node_id: str, update: Update, times: int) -> None:
        """Queue ``update`` about ``node_id`` to be sent ``times`` times."""
        self._remove(node_id)
        if len(self._left) >= self.capacity:
            self._remove(next(iter(self._by_left[min(self._by_left)])))
        self._left[node_id] = times
        self._by_left.setdefault(times, {})[node_id] = update

    def take(self, limit: int, first: str | None = None) -> list[Update]:
        """Up to ``limit`` items to send now, news about ``first`` (the recipient) first."""
        chosen: list[tuple[str, Update, int]] = []
        if first is not None and first in self._left:
            left = self._left[first]
            chosen.append((first, self._by_left[left][first], left))
        for left in sorted(self._by_left, reverse=True):
            if len(chosen) >= limit:
                break
            for node_id, update in reversed(self._by_left[left].items()):
                if len(chosen) >= limit:
                    break
                if node_id != first:
                    chosen.append((node_id, update, left))
        for node_id, update, left in chosen:
            self._remove(node_id)
            if left > 1:
                self._left[node_id] = left - 1
                self._by_left.setdefault(left - 1, {})[node_id] = update
        return [update for _, update, _ in chosen]

    def halve(self) -> None:
        """Halve what every item has left to send (items at one send left are dropped).

        Called when a peer turns out to hold exactly this node's view: everything queued
        was news to nobody there (Demers et al.'s "lose interest" feedback), so a backlog
        left by a mass join drains in a few such contacts instead of hundreds of periods.
        """
        by_left: dict[int, dict[str, Update]] = {}
        for left in sorted(self._by_left):
            for node_id, update in self._by_left[left].items():
                if left // 2:
                    by_left.setdefault(left // 2, {})[node_id] = update
                    self._left[node_id] = left // 2
                else:
                    del self._left[node_id]
        self._by_left = by_left

    def _remove(self, node_id: str) -> None:
        left = self._left.pop(node_id, None)
        if left is None:
            return
        bucket = self._by_left[left]
        del bucket[node_id]
        if not bucket:
            del self._by_left[left]
