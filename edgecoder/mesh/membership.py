"""SWIM-style membership, sans I/O: time and messages in, messages to send out.

Each protocol period a node pings one member (round-robin over a shuffled list); no ack
within ``ack_timeout_ms`` → it asks ``indirect_k`` others to ping the member for it; still
nothing by the end of the period → the member is *suspect*; a suspect not heard from
within the suspicion timeout (``suspicion_mult`` times log10(N+1) periods) is *dead*, and is
forgotten ``dead_retention_ms`` later. Incarnation numbers order the news about a member:
a live node that hears it is suspected bumps its own incarnation and announces itself
alive, which overrides the rumour.

News (alive/suspect/dead updates) is piggybacked on every message, each update sent about
``retransmit_mult`` times log2(N+1) times, at most ``max_piggyback`` per message, so the bytes a
node sends per period do not grow with N. Every ``push_pull_periods`` periods a node also
exchanges its whole view with one random member (anti-entropy), which is what lets a new
node learn everyone quickly.

*Alive* news about a node is only ever created by that node itself; in the running mesh
it travels as the node's signed peer record (checked before it reaches this module), so
nobody can invent a member. Suspicion and death are rumours about existing members only.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

__all__ = ("ALIVE", "DEAD", "SUSPECT", "Member", "Membership", "MembershipConfig", "Send")

ALIVE, SUSPECT, DEAD = "alive", "suspect", "dead"
_RANK = {ALIVE: 0, SUSPECT: 1, DEAD: 2}


@dataclass(frozen=True, slots=True)
class MembershipConfig:
    """Timers and constants (milliseconds)."""

    period_ms: int = 1000
    ack_timeout_ms: int = 400
    indirect_k: int = 3
    suspicion_mult: int = 4
    dead_retention_ms: int = 60_000
    retransmit_mult: int = 3
    max_piggyback: int = 8
    push_pull_periods: int = 5


@dataclass(slots=True)
class Member:
    """What this node believes about one member."""

    node_id: str
    address: str
    incarnation: int
    state: str
    since_ms: int


@dataclass(frozen=True, slots=True)
class Send:
    """An action: send ``message`` to the node at ``address``."""

    address: str
    message: dict[str, Any]


@dataclass(slots=True)
class _Probe:
    target: str
    seq: int
    sent_ms: int
    indirect_sent: bool = False
    acked: bool = False


@dataclass(slots=True)
class _Relay:
    requester: str
    requester_seq: int
    expires_ms: int


@dataclass(slots=True)
class _News:
    update: dict[str, Any]
    remaining: int


class Membership:
    """One node's view of the mesh."""

    def __init__(
        self,
        node_id: str,
        address: str,
        config: MembershipConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.node_id = node_id
        self.address = address
        self.config = config or MembershipConfig()
        self.incarnation = 0
        self._rng = rng or random.Random()  # noqa: S311 - choice of peers, not secrets
        self._members: dict[str, Member] = {}
        self._order: list[str] = []
        self._cursor = 0
        self._seq = 0
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._news: dict[str, _News] = {}
        self._periods = 0
        self._next_period_ms = 0
        self._seeds: list[str] = []
        self._seed_backoff = 1
        self._next_seed_period = 0

    # -- views ----------------------------------------------------------------------------

    def members(self) -> list[Member]:
        """Every member this node knows, itself excluded, dead ones included until evicted."""
        return list(self._members.values())

    def alive_ids(self) -> set[str]:
        """Members believed alive or suspect (not yet declared dead)."""
        return {m.node_id for m in self._members.values() if m.state != DEAD}

    def state_of(self, node_id: str) -> str | None:
        """The state of one member, or None if unknown."""
        member = self._members.get(node_id)
        return member.state if member else None

    # -- news ---------------------------------------------------------------------------

    def _retransmits(self) -> int:
        return self.config.retransmit_mult * max(1, math.ceil(math.log2(len(self._members) + 2)))

    def _announce(self, update: dict[str, Any]) -> None:
        self._news[update["id"]] = _News(update, self._retransmits())

    def _self_update(self) -> dict[str, Any]:
        return {"id": self.node_id, "addr": self.address, "inc": self.incarnation, "state": ALIVE}

    def _piggyback(self) -> list[dict[str, Any]]:
        ranked = sorted(self._news.values(), key=lambda n: -n.remaining)
        chosen = ranked[: self.config.max_piggyback]
        for news in chosen:
            news.remaining -= 1
            if news.remaining <= 0:
                self._news.pop(news.update["id"], None)
        return [n.update for n in chosen]

    def _message(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"t": kind, "from": self.node_id, "addr": self.address, "inc": self.incarnation,
                "updates": self._piggyback(), **fields}  # fmt: skip

    def _apply(self, update: dict[str, Any], now_ms: int) -> None:
        node_id, inc, state = update["id"], int(update["inc"]), update["state"]
        if node_id == self.node_id:
            if state != ALIVE and inc >= self.incarnation:
                # A rumour of our own suspicion or death: refute it with a newer incarnation.
                self.incarnation = inc + 1
                self._announce(self._self_update())
            return
        member = self._members.get(node_id)
        if member is None:
            if state == DEAD:
                return
            member = Member(node_id, str(update["addr"]), inc, state, now_ms)
            self._members[node_id] = member
            self._order.insert(self._rng.randrange(len(self._order) + 1), node_id)
            self._announce(update)
            return
        newer = inc > member.incarnation or (
            inc == member.incarnation and _RANK[state] > _RANK[member.state]
        )
        if not newer or (member.state == DEAD and state != ALIVE):
            return
        member.incarnation, member.state, member.since_ms = inc, state, now_ms
        member.address = str(update.get("addr", member.address))
        self._announce({"id": node_id, "addr": member.address, "inc": inc, "state": state})

    def _heard_from(self, message: dict[str, Any], now_ms: int) -> None:
        self._apply({"id": message["from"], "addr": message["addr"], "inc": message["inc"],
                     "state": ALIVE}, now_ms)  # fmt: skip
        for update in message.get("updates", []):
            self._apply(update, now_ms)

    # -- protocol -------------------------------------------------------------------------

    def join(self, seeds: list[str], now_ms: int) -> list[Send]:
        """Start: announce ourselves and ask each seed address for its full view.

        While this node knows no live member it asks the seeds again, backing off from one
        period to 32.
        """
        self._seeds = list(seeds)
        self._announce(self._self_update())
        self._next_period_ms = now_ms
        self._next_seed_period = 1
        return self._ask_seeds()

    def _ask_seeds(self) -> list[Send]:
        return [Send(address, self._message("sync", view=self._view())) for address in self._seeds]

    def _view(self) -> list[dict[str, Any]]:
        view = [self._self_update()]
        view += [{"id": m.node_id, "addr": m.address, "inc": m.incarnation, "state": m.state}
                 for m in self._members.values()]  # fmt: skip
        return view

    def _next_target(self) -> Member | None:
        live = [i for i in self._order if self._members[i].state != DEAD]
        if not live:
            return None
        if self._cursor >= len(self._order):
            self._rng.shuffle(self._order)
            self._cursor = 0
        while self._cursor < len(self._order):
            node_id = self._order[self._cursor]
            self._cursor += 1
            if self._members[node_id].state != DEAD:
                return self._members[node_id]
        return None

    def _suspicion_ms(self) -> int:
        factor = max(1.0, math.log10(len(self._members) + 1))
        return int(self.config.suspicion_mult * factor * self.config.period_ms)

    def tick(self, now_ms: int) -> list[Send]:
        """Advance time: timeouts, suspicion, eviction, and a new probe each period."""
        out: list[Send] = []
        cfg = self.config
        probe = self._probe
        if probe is not None and not probe.acked:
            target = self._members.get(probe.target)
            if (
                target is not None
                and not probe.indirect_sent
                and now_ms - probe.sent_ms >= cfg.ack_timeout_ms
            ):
                probe.indirect_sent = True
                helpers = [m for m in self._members.values()
                           if m.state == ALIVE and m.node_id != probe.target]  # fmt: skip
                for helper in self._rng.sample(helpers, min(cfg.indirect_k, len(helpers))):
                    out.append(Send(helper.address, self._message(
                        "ping_req", seq=probe.seq, target=target.node_id,
                        target_addr=target.address)))  # fmt: skip
            if (
                target is not None
                and now_ms - probe.sent_ms >= cfg.period_ms
                and target.state == ALIVE
            ):
                self._apply({"id": target.node_id, "addr": target.address,
                             "inc": target.incarnation, "state": SUSPECT}, now_ms)  # fmt: skip
                self._probe = None
        for member in list(self._members.values()):
            if member.state == SUSPECT and now_ms - member.since_ms >= self._suspicion_ms():
                self._apply({"id": member.node_id, "addr": member.address,
                             "inc": member.incarnation, "state": DEAD}, now_ms)  # fmt: skip
            elif member.state == DEAD and now_ms - member.since_ms >= cfg.dead_retention_ms:
                del self._members[member.node_id]
                self._order.remove(member.node_id)
                self._cursor = min(self._cursor, len(self._order))
        self._relays = {k: r for k, r in self._relays.items() if r.expires_ms > now_ms}
        if now_ms >= self._next_period_ms:
            self._next_period_ms = now_ms + cfg.period_ms
            self._periods += 1
            target = self._next_target()
            if target is None and self._seeds and self._periods >= self._next_seed_period:
                out.extend(self._ask_seeds())
                self._seed_backoff = min(self._seed_backoff * 2, 32)
                self._next_seed_period = self._periods + self._seed_backoff
            if target is not None:
                self._seq += 1
                self._probe = _Probe(target.node_id, self._seq, now_ms)
                out.append(Send(target.address, self._message("ping", seq=self._seq)))
                if self._periods % cfg.push_pull_periods == 0:
                    peer = self._rng.choice([m for m in self._members.values() if m.state != DEAD])
                    out.append(Send(peer.address, self._message("sync", view=self._view())))
        return out

    def receive(self, message: dict[str, Any], now_ms: int) -> list[Send]:
        """Handle one message from a peer (already authenticated by the transport)."""
        kind = message.get("t")
        self._heard_from(message, now_ms)
        if kind == "ping":
            return [Send(str(message["addr"]), self._message("ack", seq=message["seq"]))]
        if kind == "ack":
            probe = self._probe
            relay = self._relays.pop(int(message["seq"]), None)
            if relay is not None:
                return [Send(relay.requester, self._message("ack", seq=relay.requester_seq))]
            if probe is not None and probe.seq == message["seq"]:
                probe.acked = True
            return []
        if kind == "ping_req":
            self._seq += 1
            self._relays[self._seq] = _Relay(str(message["addr"]), int(message["seq"]),
                                             now_ms + self.config.period_ms)  # fmt: skip
            return [Send(str(message["target_addr"]), self._message("ping", seq=self._seq))]
        if kind == "sync":
            for update in message.get("view", []):
                self._apply(update, now_ms)
            if not message.get("reply"):
                return [Send(str(message["addr"]), self._message("sync", view=self._view(),
                                                                   reply=True))]  # fmt: skip
        return []
