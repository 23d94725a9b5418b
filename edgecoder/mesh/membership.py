"""SWIM-style membership, sans I/O: time and messages in, messages to send out.

Each protocol period a node pings one member (round-robin over a shuffled list); no ack
within ``ack_timeout_ms`` → it pings the member once more and asks ``indirect_k`` others to
ping it too; still nothing by the end of the period → the member is *suspect*; a suspect
not heard from within the suspicion timeout (``suspicion_mult`` * max(1, log10(N+1))
periods) is *dead*, and is forgotten ``dead_retention_ms`` later. Incarnation numbers
order the news about a member: a live node that hears it is suspected bumps its own
incarnation and announces itself alive, which overrides the rumour. News about the
recipient travels first on every message, so a suspect hears of its suspicion on the next
probe.

News is piggybacked on every message (each item ``retransmit_mult`` * ceil(log10(N+1))
times, as in memberlist; at most ``max_piggyback`` per message). Every
``push_pull_periods`` periods a node also runs anti-entropy with one random member over a
bucketed digest of its view: equal roots end the exchange in one small message; otherwise
only the entries of differing buckets travel, at most ``sync_max_entries`` per message. So
a converged mesh costs each node a constant number of bytes per period, and a joining node
learns the whole view in O(log N) periods.

Who is a member is not this module's call: a :class:`Directory` vouches for every *alive*
entry (in the running mesh, only when that node's own signed peer record at that
incarnation has been verified) and knows each member's address. Suspicion and death are
rumours about existing members only, so nobody can invent a member.

A driver that asks (``track_changes=True``) collects each member's change of state —
learnt, suspected, dead, back alive, forgotten — with :meth:`Membership.take_changes`
after each call, and announces them; the core itself announces nothing.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass
from typing import Any, Protocol

from edgecoder.mesh.digest import ViewDigest, bucket_of
from edgecoder.mesh.news import NewsQueue

__all__ = (
    "ALIVE",
    "DEAD",
    "FORGOTTEN",
    "SUSPECT",
    "Directory",
    "Member",
    "Membership",
    "MembershipConfig",
    "Send",
    "StateChange",
)

ALIVE, SUSPECT, DEAD = "alive", "suspect", "dead"
_RANK = {ALIVE: 0, SUSPECT: 1, DEAD: 2}
_STATES = frozenset(_RANK)
FORGOTTEN = "forgotten"
"""Not a member's state: what a :class:`StateChange` says when the view drops a member."""

Entry = tuple[int, str, int]
"""What a node holds about a member: (incarnation, state, advert version)."""
_INTERNED: dict[Entry, Entry] = {}


def _supersedes(new: Entry, old: Entry) -> bool:
    """Whether ``new`` is later news about a member than ``old``."""
    if new[0] != old[0]:
        return new[0] > old[0]
    if new[1] != old[1]:
        return _RANK[new[1]] > _RANK[old[1]]
    return new[1] == ALIVE and new[2] > old[2]


def _accepts(held: Entry, new: Entry) -> bool:
    """Whether news ``new`` replaces ``held`` (only a node itself brings the dead back)."""
    return _supersedes(new, held) and (held[1] != DEAD or new[1] == ALIVE)


def _parse_item(item: object) -> tuple[str, Entry] | None:
    """``[node_id, incarnation, state, advert]`` from the wire, or None if malformed."""
    if not isinstance(item, list) or len(item) != 4:
        return None
    node_id, inc, state, advert = item
    if (
        isinstance(node_id, str)
        and type(inc) is int
        and type(advert) is int
        and state in _STATES
        and inc >= 0
        and advert >= 0
    ):
        return node_id, (inc, state, advert)
    return None


def _entry(incarnation: int, state: str, advert: int) -> Entry:
    # Most members of a mesh share a handful of distinct entries; sharing one tuple per
    # distinct value keeps a 10,000-member view small.
    key = (incarnation, state, advert)
    if len(_INTERNED) > 65_536:
        _INTERNED.clear()
    return _INTERNED.setdefault(key, key)


@dataclass(frozen=True, slots=True)
class MembershipConfig:
    """Timers and constants (milliseconds where the name says so)."""

    period_ms: int = 1000
    ack_timeout_ms: int = 400
    indirect_k: int = 3
    suspicion_mult: int = 5
    dead_retention_ms: int = 60_000
    retransmit_mult: int = 4
    max_piggyback: int = 8
    push_pull_periods: int = 1
    sync_max_entries: int = 1024
    digest_buckets: int = 64
    max_news: int = 1024
    reconnect_periods: int = 10
    """Every this many periods, one member this node lost (dead, or a seed address no live
    member holds) is asked for a sync: two halves of a partition that outlived the
    suspicion timeout find each other again when it heals (0: never)."""


@dataclass(frozen=True, slots=True)
class Member:
    """What this node believes about one member."""

    node_id: str
    address: str | None
    incarnation: int
    state: str
    advert: int
    since_ms: int | None
    """When it became suspect or dead (None while alive)."""


@dataclass(frozen=True, slots=True)
class StateChange:
    """A member's state changed: ``previous`` None when newly learnt, ``state``
    :data:`FORGOTTEN` when evicted."""

    node_id: str
    state: str
    previous: str | None


@dataclass(frozen=True, slots=True)
class Send:
    """An action: send ``message`` to the node at ``address`` (``node_id`` if known)."""

    address: str
    message: dict[str, Any]
    node_id: str | None = None


class Directory(Protocol):
    """Where membership learns who may be a member and how to reach them."""

    def vouch(self, node_id: str, incarnation: int, advert: int) -> bool:
        """Whether ``node_id`` may be believed alive at this incarnation and advert."""

    def address(self, node_id: str) -> str | None:
        """Where ``node_id`` is reached, if known."""


@dataclass(slots=True)
class _Probe:
    target: str
    seq: int
    sent_ms: int
    indirect_sent: bool = False
    acked: bool = False
    helpers: tuple[str, ...] = ()


@dataclass(slots=True)
class _Relay:
    requester: str
    requester_address: str
    requester_seq: int
    expires_ms: int


class Membership:
    """One node's view of the mesh."""

    def __init__(
        self,
        node_id: str,
        address: str,
        directory: Directory,
        config: MembershipConfig | None = None,
        rng: random.Random | None = None,
        *,
        incarnation: int = 0,
        advert: int = 0,
        track_changes: bool = False,
    ) -> None:
        self.node_id = node_id
        self.address = address
        self.directory = directory
        self.config = config or MembershipConfig()
        self.incarnation = incarnation
        self.advert = advert
        self._rng = rng or random.Random()  # noqa: S311 - choice of peers, not secrets
        self._members: dict[str, Entry] = {}
        self._since: dict[str, int] = {}
        # (since, node id) of suspects and of the dead, oldest first: aging a tick costs
        # O(what expires), not O(every suspect). Stale items are skipped when popped.
        self._suspects: list[tuple[int, str]] = []
        self._deaths: list[tuple[int, str]] = []
        self._evicted: dict[str, tuple[int, int]] = {}
        self._live = 0
        self._suspected = 0
        self._order: list[str] = []
        self._cursor = 0
        self._seq = 0
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._news = NewsQueue(self.config.max_news)
        self._digest = ViewDigest(self.config.digest_buckets)
        # Members by digest bucket (dicts keep insertion order: deterministic runs), so a
        # sync touches only the buckets it sends, not the whole view.
        self._by_bucket: list[dict[str, None]] = [{} for _ in range(self.config.digest_buckets)]
        self._digest.toggle(node_id, incarnation, ALIVE, advert)
        self._periods = 0
        self._next_period_ms = 0
        self._seeds: list[str] = []
        self._seed_backoff = 1
        self._next_seed_period = 0
        self._reconnects = 0
        self._changes: list[StateChange] | None = [] if track_changes else None

    # -- views ----------------------------------------------------------------------------

    @property
    def live_count(self) -> int:
        """Members believed alive or suspect (not yet declared dead), this node excluded."""
        return self._live

    @property
    def suspect_count(self) -> int:
        """Members believed suspect."""
        return self._suspected

    @property
    def dead_count(self) -> int:
        """Members declared dead and not yet evicted."""
        return len(self._members) - self._live

    def members(self) -> list[Member]:
        """Every member this node knows, itself excluded, dead ones included until evicted."""
        return [self._member(node_id) for node_id in self._members]

    def member(self, node_id: str) -> Member | None:
        """One member, or None if unknown."""
        return self._member(node_id) if node_id in self._members else None

    def _member(self, node_id: str) -> Member:
        inc, state, advert = self._members[node_id]
        address = self.directory.address(node_id)
        return Member(node_id, address, inc, state, advert, self._since.get(node_id))

    def alive_ids(self) -> set[str]:
        """Members believed alive or suspect."""
        return {i for i, entry in self._members.items() if entry[1] != DEAD}

    def state_of(self, node_id: str) -> str | None:
        """The state of one member, or None if unknown."""
        entry = self._members.get(node_id)
        return entry[1] if entry else None

    @property
    def news_pending(self) -> int:
        """News items still to be piggybacked (each is sent several times)."""
        return len(self._news)

    def root(self) -> str:
        """The digest of this node's whole view (itself included)."""
        return self._digest.root()

    def take_changes(self) -> list[StateChange]:
        """The members' changes of state since the last call, oldest first (with
        ``track_changes``; else always empty)."""
        if not self._changes:
            return []
        changes, self._changes = self._changes, []
        return changes

    def _changed(self, node_id: str, state: str, previous: str | None) -> None:
        if self._changes is not None:
            self._changes.append(StateChange(node_id, state, previous))

    # -- changes --------------------------------------------------------------------------

    def _retransmits(self) -> int:
        return self.config.retransmit_mult * max(1, math.ceil(math.log10(len(self._members) + 2)))

    def _announce(self, node_id: str, entry: Entry) -> None:
        self._news.put(node_id, [node_id, *entry], self._retransmits())

    def _set_self(self, incarnation: int, advert: int) -> None:
        self._digest.toggle(self.node_id, self.incarnation, ALIVE, self.advert)
        self.incarnation, self.advert = incarnation, advert
        self._digest.toggle(self.node_id, incarnation, ALIVE, advert)
        self._announce(self.node_id, _entry(incarnation, ALIVE, advert))

    def bump_incarnation(self) -> None:
        """Announce this node again under a newer incarnation (to refresh its record)."""
        self._set_self(self.incarnation + 1, self.advert)

    def set_advert(self, advert: int) -> None:
        """This node published a new capability advert: announce its version."""
        if advert > self.advert:
            self._set_self(self.incarnation, advert)

    def _apply(self, node_id: str, inc: int, state: str, advert: int, now_ms: int,
               gossip: bool, direct: bool = False) -> None:  # fmt: skip
        if node_id == self.node_id:
            if state != ALIVE and inc >= self.incarnation:
                # A rumour of our own suspicion or death: refute it with a newer incarnation.
                self._set_self(inc + 1, self.advert)
            return
        held = self._members.get(node_id)
        if held is None:
            if state != ALIVE or not self.directory.vouch(node_id, inc, advert):
                return
            if self._buried(node_id, inc) and not direct:
                return  # late news from before its death: only the node itself overrides it
            entry = _entry(inc, state, advert)
            self._members[node_id] = entry
            self._by_bucket[bucket_of(node_id, self._digest.buckets)][node_id] = None
            self._live += 1
            self._digest.toggle(node_id, inc, state, advert)
            self._order.insert(self._rng.randrange(len(self._order) + 1), node_id)
            self._changed(node_id, state, None)
            if gossip:
                self._announce(node_id, entry)
            return
        held_inc, held_state, held_advert = held
        if not _accepts(held, (inc, state, advert)):
            return
        if state == ALIVE and not self.directory.vouch(node_id, inc, advert):
            return
        if state == SUSPECT:
            advert = held_advert
        entry = _entry(inc, state, advert)
        self._members[node_id] = entry
        self._digest.toggle(node_id, held_inc, held_state, held_advert)
        self._digest.toggle(node_id, inc, state, advert)
        self._live += (state != DEAD) - (held_state != DEAD)
        self._suspected += (state == SUSPECT) - (held_state == SUSPECT)
        if state == ALIVE:
            self._since.pop(node_id, None)
        elif state != held_state:
            self._since[node_id] = now_ms
            heapq.heappush(self._suspects if state == SUSPECT else self._deaths, (now_ms, node_id))
        if state != held_state:
            self._changed(node_id, state, held_state)
        self._announce(node_id, entry)

    def _buried(self, node_id: str, incarnation: int) -> bool:
        """Whether ``node_id`` was evicted at ``incarnation`` or later (recently)."""
        tomb = self._evicted.get(node_id)
        return tomb is not None and incarnation <= tomb[0]

    def _apply_wire(self, item: object, now_ms: int, gossip: bool) -> None:
        # Items arrive from authenticated peers but are still checked for shape.
        parsed = _parse_item(item)
        if parsed is not None:
            node_id, (inc, state, advert) = parsed
            self._apply(node_id, inc, state, advert, now_ms, gossip)

    # -- messages -------------------------------------------------------------------------

    def _message(self, kind: str, to: str | None = None, **fields: Any) -> dict[str, Any]:
        updates = self._news.take(self.config.max_piggyback, first=to)
        return {"t": kind, "from": self.node_id, "addr": self.address, "inc": self.incarnation,
                "adv": self.advert, "updates": updates, **fields}  # fmt: skip

    def _send_to(self, node_id: str, kind: str, **fields: Any) -> Send | None:
        address = self.directory.address(node_id)
        if address is None:
            return None
        return Send(address, self._message(kind, to=node_id, **fields), node_id)

    def _reply(self, message: dict[str, Any], kind: str, **fields: Any) -> Send:
        sender = str(message["from"])
        address = self.directory.address(sender) or str(message["addr"])
        return Send(address, self._message(kind, to=sender, **fields), sender)

    def _heard_from(self, message: dict[str, Any], now_ms: int) -> None:
        # First-hand: the (authenticated) sender itself is alive, even if we evicted it.
        sender, inc, advert = message["from"], message["inc"], message.get("adv", 0)
        if isinstance(sender, str) and type(inc) is int and type(advert) is int:
            self._apply(sender, inc, ALIVE, advert, now_ms, True, direct=True)
        updates = message.get("updates")
        if isinstance(updates, list):
            for item in updates[: self.config.max_piggyback * 4]:
                self._apply_wire(item, now_ms, True)

    def _bucket(self, bucket: int) -> list[tuple[str, Entry]]:
        """This node's entries in one digest bucket, its own included."""
        members = self._members
        listed = [(node_id, members[node_id]) for node_id in self._by_bucket[bucket]]
        if bucket_of(self.node_id, self._digest.buckets) == bucket:
            listed.append((self.node_id, self._own_entry()))
        return listed

    def _own_entry(self) -> Entry:
        return (self.incarnation, ALIVE, self.advert)

    def _held(self, node_id: str) -> Entry | None:
        return self._own_entry() if node_id == self.node_id else self._members.get(node_id)

    def _have(self, differing: list[int]) -> tuple[list[int], list[list[object]]]:
        """Whole differing buckets in random order while they fit in one message.

        Returns the buckets covered and this node's entries in them, without records.
        """
        order = list(differing)
        self._rng.shuffle(order)
        covered: list[int] = []
        have: list[list[object]] = []
        for bucket in order:
            listed = self._bucket(bucket)
            if covered and len(have) + len(listed) > self.config.sync_max_entries:
                continue
            covered.append(bucket)
            have.extend([node_id, *entry] for node_id, entry in listed)
        return sorted(covered), have

    # -- protocol -------------------------------------------------------------------------

    def join(self, seeds: list[str], now_ms: int) -> list[Send]:
        """Start: announce ourselves and start anti-entropy with each seed address.

        While this node knows no live member it asks the seeds again, backing off from one
        period to 32.
        """
        self._seeds = list(seeds)
        self._announce(self.node_id, _entry(self.incarnation, ALIVE, self.advert))
        self._next_period_ms = now_ms
        self._next_seed_period = 1
        return self._ask_seeds()

    def add_seeds(self, seeds: list[str], now_ms: int) -> list[Send]:
        """Seed addresses found later (mDNS, configuration): contact the new ones now."""
        fresh = [s for s in seeds if s not in self._seeds and s != self.address]
        self._seeds.extend(fresh)
        return [Send(a, self._message("sync", root=self.root())) for a in fresh]

    def _ask_seeds(self) -> list[Send]:
        return [Send(a, self._message("sync", root=self.root())) for a in self._seeds]

    def _reconnect(self) -> Send | None:
        """A sync to the next member this node lost, in turn: a dead one (at its recorded
        address), or a seed address that no live member holds (evicted ones, found again
        by mDNS or configured)."""
        dead = [i for i, entry in self._members.items() if entry[1] == DEAD]
        held = {self.directory.address(i) for i in self.alive_ids()}
        seeds = [a for a in self._seeds if a not in held and a != self.address]
        if not dead and not seeds:
            return None
        turn = self._reconnects % (len(dead) + len(seeds))
        self._reconnects += 1
        if turn < len(dead):
            return self._send_to(dead[turn], "sync", root=self.root())
        return Send(seeds[turn - len(dead)], self._message("sync", root=self.root()))

    def _next_target(self) -> str | None:
        if self._live == 0:
            return None
        for _ in range(2):
            if self._cursor >= len(self._order):
                self._rng.shuffle(self._order)
                self._cursor = 0
            while self._cursor < len(self._order):
                node_id = self._order[self._cursor]
                self._cursor += 1
                if self._members[node_id][1] != DEAD:
                    return node_id
        return None

    def _random_live(self) -> str | None:
        if self._live == 0:
            return None
        for _ in range(16):
            node_id = self._order[self._rng.randrange(len(self._order))]
            if self._members[node_id][1] != DEAD:
                return node_id
        return self._next_target()

    def _suspicion_ms(self) -> int:
        factor = max(1.0, math.log10(len(self._members) + 1))
        return int(self.config.suspicion_mult * factor * self.config.period_ms)

    def tick(self, now_ms: int) -> list[Send]:
        """Advance time: timeouts, suspicion, eviction, and a new probe each period."""
        out: list[Send] = []
        self._check_probe(now_ms, out)
        self._age(now_ms)
        if self._relays:
            self._relays = {k: r for k, r in self._relays.items() if r.expires_ms > now_ms}
        if now_ms < self._next_period_ms:
            return out
        cfg = self.config
        self._next_period_ms = now_ms + cfg.period_ms
        self._periods += 1
        target = self._next_target()
        if target is None:
            if self._seeds and self._periods >= self._next_seed_period:
                out.extend(self._ask_seeds())
                self._seed_backoff = min(self._seed_backoff * 2, 32)
                self._next_seed_period = self._periods + self._seed_backoff
            return out
        self._seed_backoff = 1
        if cfg.reconnect_periods and self._periods % cfg.reconnect_periods == 0:
            lost = self._reconnect()
            if lost is not None:
                out.append(lost)
        self._seq += 1
        self._probe = _Probe(target, self._seq, now_ms)
        ping = self._send_to(target, "ping", seq=self._seq)
        if ping is not None:
            out.append(ping)
        if self._periods % cfg.push_pull_periods == 0:
            peer = self._random_live()
            sync = self._send_to(peer, "sync", root=self.root()) if peer else None
            if sync is not None:
                out.append(sync)
        return out

    def _check_probe(self, now_ms: int, out: list[Send]) -> None:
        probe = self._probe
        if probe is None or probe.acked:
            return
        held = self._members.get(probe.target)
        if held is None:
            self._probe = None
            return
        cfg = self.config
        if not probe.indirect_sent and now_ms - probe.sent_ms >= cfg.ack_timeout_ms:
            probe.indirect_sent = True
            helpers = [self._order[self._rng.randrange(len(self._order))]
                       for _ in range(cfg.indirect_k * 2)]  # fmt: skip
            # Distinct, in the order drawn (not a set's: runs stay deterministic for a seed).
            alive = (h for h in helpers if h != probe.target and self._members[h][1] == ALIVE)
            probe.helpers = tuple(dict.fromkeys(alive))[: cfg.indirect_k]
            # A second direct ping alongside the indirect ones: one lost ping or ack alone
            # should not be enough to suspect a member.
            again = self._send_to(probe.target, "ping", seq=probe.seq)
            if again is not None:
                out.append(again)
            for helper in probe.helpers:
                request = self._send_to(helper, "ping_req", seq=probe.seq, target=probe.target)
                if request is not None:
                    out.append(request)
        if now_ms - probe.sent_ms >= cfg.period_ms:
            self._probe = None
            if held[1] == ALIVE:
                self._apply(probe.target, held[0], SUSPECT, held[2], now_ms, True)

    def _age(self, now_ms: int) -> None:
        retention = self.config.dead_retention_ms
        while self._evicted:  # oldest first (re-evictions move to the end)
            oldest = next(iter(self._evicted))
            if now_ms - self._evicted[oldest][1] < retention:
                break
            del self._evicted[oldest]
        suspicion = self._suspicion_ms()
        while self._suspects and now_ms - self._suspects[0][0] >= suspicion:
            since, node_id = heapq.heappop(self._suspects)
            held = self._members.get(node_id)
            if held and held[1] == SUSPECT and self._since.get(node_id) == since:
                self._apply(node_id, held[0], DEAD, held[2], now_ms, True)
        while self._deaths and now_ms - self._deaths[0][0] >= retention:
            since, node_id = heapq.heappop(self._deaths)
            held = self._members.get(node_id)
            if held and held[1] == DEAD and self._since.get(node_id) == since:
                self._evict(node_id, now_ms)

    def _evict(self, node_id: str, now_ms: int) -> None:
        inc, state, advert = self._members.pop(node_id)
        del self._by_bucket[bucket_of(node_id, self._digest.buckets)][node_id]
        self._evicted.pop(node_id, None)
        self._evicted[node_id] = (inc, now_ms)
        self._since.pop(node_id, None)
        self._digest.toggle(node_id, inc, state, advert)
        index = self._order.index(node_id)
        del self._order[index]
        if index < self._cursor:
            self._cursor -= 1
        self._changed(node_id, FORGOTTEN, state)

    def receive(self, message: dict[str, Any], now_ms: int) -> list[Send]:
        """Handle one message from a peer (already authenticated by the transport)."""
        kind = message.get("t")
        self._heard_from(message, now_ms)
        if kind == "ping":
            return [self._reply(message, "ack", seq=message.get("seq"))]
        if kind == "ack":
            return self._on_ack(message)
        if kind == "ping_req":
            # A helper that has not learnt of the target yet (a mesh still joining) pings it
            # anyway if its directory can reach it: the request carries the target's record.
            target = message.get("target")
            if not isinstance(target, str) or target == self.node_id:
                return []
            self._seq += 1
            ping = self._send_to(target, "ping", seq=self._seq)
            if ping is None:
                return []
            sender = str(message["from"])
            self._relays[self._seq] = _Relay(sender, str(message["addr"]), int(message["seq"]),
                                             now_ms + self.config.period_ms)  # fmt: skip
            return [ping]
        if kind == "sync":
            if message.get("root") == self.root():
                self._news.halve()  # the peer already knows everything we would tell it
                return []
            return [self._reply(message, "sync_digest", buckets=self._digest.hashes())]
        if kind == "sync_digest":
            theirs = message.get("buckets")
            if not isinstance(theirs, list):
                return []
            differing = self._digest.differing([str(h) for h in theirs])
            if not differing:
                return []
            want, have = self._have(differing)
            return [self._reply(message, "sync_have", want=want, have=have)]
        if kind == "sync_have":
            return self._on_have(message)
        if kind == "sync_entries":
            return self._on_entries(message, now_ms)
        return []

    def _on_ack(self, message: dict[str, Any]) -> list[Send]:
        seq = message.get("seq")
        relay = self._relays.pop(seq, None) if isinstance(seq, int) else None
        if relay is not None:
            address = self.directory.address(relay.requester) or relay.requester_address
            ack = self._message("ack", to=relay.requester, seq=relay.requester_seq)
            return [Send(address, ack, relay.requester)]
        probe = self._probe
        sender = message["from"]
        if (
            probe is not None
            and probe.seq == seq
            and (sender == probe.target or sender in probe.helpers)
        ):
            probe.acked = True
        return []

    def _on_have(self, message: dict[str, Any]) -> list[Send]:
        # The initiator listed its entries in some buckets: send back what is newer here
        # or missing there (with records), and name what it holds newer (it sends those).
        want, have = message.get("want"), message.get("have")
        if not isinstance(want, list) or not isinstance(have, list):
            return []
        limit = self.config.sync_max_entries
        theirs = dict(p for p in map(_parse_item, have[:limit]) if p is not None)
        buckets = sorted({b for b in want if type(b) is int and 0 <= b < self._digest.buckets})
        # Random order: a joining node asking several peers gets different buckets from each.
        self._rng.shuffle(buckets)
        entries: list[list[object]] = []
        for bucket in buckets:
            if len(entries) >= limit:
                break
            for node_id, entry in self._bucket(bucket):
                other = theirs.get(node_id)
                if other is None and entry[1] != ALIVE:
                    continue  # a rumour about a member it does not know: it would ignore it
                if len(entries) < limit and (other is None or _supersedes(entry, other)):
                    entries.append([node_id, *entry])
        need = [node_id for node_id, entry in theirs.items() if self._would_take(node_id, entry)]
        if not entries and not need:
            return []
        return [self._reply(message, "sync_entries", entries=entries, need=need)]

    def _would_take(self, node_id: str, entry: Entry) -> bool:
        """Whether news ``entry`` about ``node_id`` would change this view (records aside)."""
        held = self._held(node_id)
        if held is None:
            return entry[1] == ALIVE and not self._buried(node_id, entry[0])
        return _accepts(held, entry)

    def _on_entries(self, message: dict[str, Any], now_ms: int) -> list[Send]:
        entries = message.get("entries")
        if isinstance(entries, list):
            for item in entries[: self.config.sync_max_entries]:
                self._apply_wire(item, now_ms, False)
        need = message.get("need")
        if not isinstance(need, list) or not need:
            return []
        # The answer to our own listing: send the entries the other side asked for (once;
        # this answer carries no ``need`` of its own).
        mine = []
        for node_id in need[: self.config.sync_max_entries]:
            held = self._held(node_id) if isinstance(node_id, str) else None
            if held is not None:
                mine.append([node_id, *held])
        return [self._reply(message, "sync_entries", entries=mine)] if mine else []
