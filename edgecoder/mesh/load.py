"""How far behind this node runs, and which mesh requests it sheds while it is too busy.

A node whose event loop is seconds behind cannot keep the protocol's timing: a claim it
sends late loses, a close it reads late comes after its own claim, and a signed request
it reads after the clock-skew window is refused. So rather than queue work it cannot do
in time, the mesh listener refuses new work early with ``503 overloaded`` and a
``Retry-After`` (:meth:`LoadGauge.admit`), cheapest first: before the body is read or a
signature checked.

Sans-I/O: the driver measures the loop's lag (how late a short sleep wakes up) and feeds
it in with :meth:`LoadGauge.observe_lag`; the listener sorts each request into a class
and asks :meth:`LoadGauge.admit`. The classes, by what shedding them costs the mesh:

- ``committed`` (claims, grants, closes, cancels, receipts): work already under way, which
  refusing would only make someone repeat. Never shed for lag, only beyond the hard bound
  on requests in progress.
- ``offers``: new work for this node. Shed first: an origin has other candidates.
- ``gossip`` (and the other signed routes): membership and records tolerate loss, and a
  peer that hears nothing from this node for a while is right to suspect it. Shed when the
  loop is far behind.
"""

from __future__ import annotations

from collections import Counter

__all__ = ("COMMITTED", "GOSSIP", "OFFERS", "LoadGauge")

COMMITTED = "committed"
OFFERS = "offers"
GOSSIP = "gossip"

_DECAY_PER_S = 0.5


class LoadGauge:
    """The loop's recent lag and the mesh requests in progress; what to shed.

    ``offer_lag_ms`` and ``gossip_lag_ms``: loop lag beyond which offers, and gossip, are
    refused. ``max_in_flight``: requests in progress beyond which anything is refused.
    The lag reading rises at once and halves every second, so one slow moment sheds
    briefly and a loop that keeps falling behind keeps shedding.
    """

    def __init__(
        self,
        *,
        offer_lag_ms: float = 1000.0,
        gossip_lag_ms: float = 3000.0,
        max_in_flight: int = 256,
    ) -> None:
        self.offer_lag_ms = offer_lag_ms
        self.gossip_lag_ms = gossip_lag_ms
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.shed: Counter[str] = Counter()
        """Requests refused, by class."""
        self.worst_lag_ms = 0.0
        """The largest single lag observed."""
        self._lag_ms = 0.0
        self._lag_at = 0.0

    def observe_lag(self, lag_ms: float, now: float) -> None:
        """One measurement: the loop woke up ``lag_ms`` late at ``now`` (monotonic s)."""
        self._lag_ms = max(lag_ms, self.lag_ms(now))
        self._lag_at = now
        self.worst_lag_ms = max(self.worst_lag_ms, lag_ms)

    def lag_ms(self, now: float) -> float:
        """The recent lag, decayed to ``now``."""
        elapsed = max(0.0, now - self._lag_at)
        return float(self._lag_ms * _DECAY_PER_S**elapsed)

    def admit(self, kind: str, now: float) -> int:
        """0 to take a request of class ``kind`` (then call :meth:`done`), else seconds to wait."""
        lag = self.lag_ms(now)
        if self.in_flight >= self.max_in_flight:
            refuse = True
        elif kind == OFFERS:
            refuse = lag > self.offer_lag_ms
        elif kind == GOSSIP:
            refuse = lag > self.gossip_lag_ms
        else:
            refuse = False
        if refuse:
            self.shed[kind] += 1
            return max(1, round(lag / 1000))
        self.in_flight += 1
        return 0

    def done(self) -> None:
        """A request admitted by :meth:`admit` has been answered (or abandoned)."""
        self.in_flight = max(0, self.in_flight - 1)

    def snapshot(self, now: float) -> dict[str, object]:
        """What ``/healthz`` reports under ``mesh.load``."""
        return {
            "loop_lag_ms": round(self.lag_ms(now)),
            "worst_loop_lag_ms": round(self.worst_lag_ms),
            "in_flight": self.in_flight,
            "shed": dict(self.shed),
        }
