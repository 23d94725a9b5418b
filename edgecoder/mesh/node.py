"""One node's live membership: the sans-I/O core, the signed records behind it, a transport.

Every core message travels as one signed gossip message (:class:`GossipTransport`)
whose canonical body is ``{"network": name, "msg": message, "records": [...]}``. The
records are the self-signed peer record and advert of every node the message says is
alive (and the sender's own on anti-entropy messages), so a receiver can check each claim
against its author's own signature before the core sees it
(:class:`~edgecoder.mesh.directory.RecordDirectory`).

The node re-signs its peer record whenever its incarnation changes (a refutation, or a
refresh before the record expires) and its advert when what it says changes (checked
every ``mesh.advert_interval_s``). A node id already alive at another address is refused
(``duplicate_node_id``); the refused node — a copy of another's data directory — stops
gossiping and says so in its log and its health report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from edgecoder import __version__
from edgecoder.clock import Clock
from edgecoder.config import Config
from edgecoder.errors import (
    DecodeError,
    EdgeCoderError,
    PeerTransportError,
    RecordError,
    RefusedError,
)
from edgecoder.events import EventHub, PeerStateChanged
from edgecoder.mesh.advert_types import Advert
from edgecoder.mesh.directory import RecordDirectory
from edgecoder.mesh.membership import ALIVE, DEAD, SUSPECT, Membership, MembershipConfig, Send
from edgecoder.mesh.peer_info import ADVERT, PEER, parse_peer, peer_body
from edgecoder.mesh.peer_view import PeerView
from edgecoder.security.identity import NodeIdentity
from edgecoder.security.mesh_guard import MeshGuard
from edgecoder.wire import canonical
from edgecoder.wire.records import SignedRecord, parse_record, sign_record, verify_record

__all__ = ("MAX_RECORDS", "GossipTransport", "MeshNode")

log = logging.getLogger(__name__)

MAX_RECORDS = 4096
_MAX_PENDING = 256
_STALL_MS = 20
"""A tick this much later than asked for counts as a stall of this node's loop."""
_CONCURRENCY = 8
"""Gossip requests in flight at once. A node talks to a few peers per period; more in
flight only grows the HTTP pool's queue, whose every change costs a pass over it."""


class GossipTransport(Protocol):
    """Delivers one gossip message to a peer: ``node_id`` (None for a seed not met yet) at
    ``address``, the transport's own form of where membership reaches it."""

    async def send(self, address: str, node_id: str | None, body: bytes) -> object:
        """Send ``body``; the peer's decoded answer.

        :raises PeerTransportError: the peer could not be reached, or refused the message
            (``code`` is the peer's, ``duplicate_node_id`` when it holds this node's id).
        """


AdvertSource = Callable[[], Awaitable[Advert]]


def membership_config(config: Config) -> MembershipConfig:
    """The core's timers and constants from ``[mesh]``."""
    mesh = config.mesh
    return MembershipConfig(
        period_ms=mesh.period_ms,
        ack_timeout_ms=mesh.ack_timeout_ms,
        indirect_k=mesh.indirect_k,
        suspicion_mult=mesh.suspicion_mult,
        dead_retention_ms=mesh.dead_retention_ms,
        retransmit_mult=mesh.retransmit_mult,
        max_piggyback=mesh.max_piggyback,
        push_pull_periods=mesh.push_pull_periods,
        sync_max_entries=mesh.sync_max_entries,
        max_news=mesh.max_news,
    )


class MeshNode:
    """Runs membership for one node and answers its peers' gossip."""

    def __init__(
        self,
        *,
        identity: NodeIdentity,
        config: Config,
        clock: Clock,
        guard: MeshGuard,
        url: str,
        addrs: list[str],
        api_port: int,
        transport: GossipTransport,
        advert_source: AdvertSource,
        events: EventHub | None = None,
        record_checks: Mapping[str, Callable[[SignedRecord], None]] | None = None,
    ) -> None:
        """``record_checks``: further record kinds this node gossips beside peer records
        and adverts (a ledger's heads), each with what checks a peer's record of it
        (raising :class:`RecordError`)."""
        if config.mesh.ack_timeout_ms >= config.mesh.period_ms:
            raise EdgeCoderError("mesh.ack_timeout_ms must be shorter than mesh.period_ms")
        self.identity = identity
        self.config = config
        self.clock = clock
        self.guard = guard
        self.url = url
        self.network = config.node.network
        self.store = guard.records
        self.directory = RecordDirectory(self.store, self.network, clock)
        self.transport = transport
        self.events = events or EventHub()
        """Where the members' changes of state are announced (:class:`PeerStateChanged`)."""
        self._advert_source = advert_source
        self._record_checks = dict(record_checks or {})
        self._gossiped = (PEER, ADVERT, *self._record_checks)
        self._addrs = addrs
        self._api_port = api_port
        # A new run starts above every incarnation an earlier run of this node announced.
        self.membership = Membership(
            identity.node_id,
            url,
            self.directory,
            membership_config(config),
            random.Random(),  # noqa: S311 - choice of peers, not secrets
            incarnation=clock.now_ms(),
            track_changes=True,
        )
        self.conflict: dict[str, str] | None = None
        self.refused: Counter[str] = Counter()
        self.dropped = 0
        self.sent: Counter[str] = Counter()
        """Gossip requests sent, by message type."""
        """Outgoing gossip dropped because it could not leave in time (backpressure)."""
        self._published_inc = -1
        self._advert: Advert | None = None
        self._last_heard: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(_CONCURRENCY)
        self._seeds = list(config.mesh.bootstrap)
        self._stalled_ms = 0
        self._virtual_ms = 0

    @property
    def node_id(self) -> str:
        """This node's id."""
        return self.identity.node_id

    def _mono_ms(self) -> int:
        """The membership's clock: monotonic time less the time this node's own loop was
        stalled (Lifeguard's local health, by its simplest measure). An ack that sat
        unread while this node could not run is no evidence against the peer."""
        now = int(self.clock.monotonic() * 1000) - self._stalled_ms
        self._virtual_ms = max(self._virtual_ms, now)
        return self._virtual_ms

    # -- own records ----------------------------------------------------------------------

    def _sign(self, kind: str, seq: int, body: dict[str, Any]) -> None:
        ttl_ms = self.config.mesh.record_ttl_s * 1000
        record = sign_record(self.identity, kind, seq, body, self.clock.now_ms(), ttl_ms)
        self.store.offer(record, self.clock.now_ms())

    def _publish_peer(self) -> None:
        body = peer_body(self.url, self._addrs, self._api_port, self.network, __version__)
        self._sign(PEER, self.membership.incarnation, body)
        self._published_inc = self.membership.incarnation

    async def publish_advert(self) -> None:
        """Re-sign the advert if what it says has changed."""
        advert = await self._advert_source()
        held = self.store.get(self.node_id, ADVERT)
        if advert == self._advert and (held is None or held.issued_ms <= self.clock.now_ms()):
            return
        seq = max(held.seq + 1 if held else 0, self.clock.now_ms())
        self._sign(ADVERT, seq, advert.as_body())
        self._advert = advert
        self.membership.set_advert(seq)

    def publish_record(self, kind: str, body: dict[str, Any]) -> None:
        """Sign and hold this node's record of a further gossiped ``kind``, replacing the
        one before (see ``record_checks``)."""
        held = self.store.get(self.node_id, kind)
        self._sign(kind, max(held.seq + 1 if held else 0, self.clock.now_ms()), body)

    def records_of(self, kind: str) -> list[SignedRecord]:
        """Every live or suspect member's current record of ``kind`` (not this node's)."""
        now, out = self.clock.now_ms(), []
        for member in self.membership.members():
            if member.state in (ALIVE, SUSPECT):
                record = self.store.get(member.node_id, kind)
                if record is not None and record.expires_ms > now:
                    out.append(record)
        return out

    def _refresh_peer(self) -> None:
        held = self.store.get(self.node_id, PEER)
        now = self.clock.now_ms()
        # Re-sign at half the lifetime, and at once when the clock went back past the
        # signing time: peers refuse a record issued in their future ("future").
        if held is not None and (held.expires_ms - now < held.ttl_ms // 2 or held.issued_ms > now):
            self.membership.bump_incarnation()
        if self.membership.incarnation != self._published_inc:
            self._publish_peer()

    # -- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Gossip until ``stop`` is set."""
        self._publish_peer()
        await self.publish_advert()
        self._dispatch(self.membership.join(self._seeds, self._mono_ms()))
        tick_s = max(0.01, min(0.1, self.config.mesh.period_ms / 10_000))
        advert_every = self.config.mesh.advert_interval_s
        next_advert = self.clock.monotonic() + advert_every
        try:
            while not stop.is_set():
                woke = self.clock.monotonic() + tick_s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), tick_s)
                late_ms = int((self.clock.monotonic() - woke) * 1000)
                if late_ms > _STALL_MS:
                    self._stalled_ms += late_ms
                if self.conflict is not None:
                    continue
                if self.clock.monotonic() >= next_advert:
                    next_advert = self.clock.monotonic() + advert_every
                    await self.publish_advert()
                    self.store.expire(self.clock.now_ms())
                self._dispatch(self.membership.tick(self._mono_ms()))
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def add_seeds(self, urls: list[str]) -> None:
        """Addresses found after start (mDNS): contact the new ones now."""
        if self.conflict is None:
            self._dispatch(self.membership.add_seeds(urls, self._mono_ms()))

    def _dispatch(self, sends: list[Send]) -> None:
        for change in self.membership.take_changes():
            self.events.publish(PeerStateChanged(change.node_id, change.state, change.previous))
        self._refresh_peer()
        for send in sends:
            if len(self._tasks) >= _MAX_PENDING:
                log.debug("gossip backlog full: dropping a %s", send.message.get("t"))
                self.dropped += 1
                continue
            body = self._encode(send.message, send.node_id)
            task = asyncio.create_task(self._deliver(send, body, self._mono_ms()))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _encode(self, message: dict[str, Any], recipient: str | None) -> bytes:
        ids = {u[0] for u in message.get("updates", ()) if u[2] == ALIVE}
        ids |= {e[0] for e in message.get("entries", ()) if e[2] == ALIVE}
        if str(message["t"]).startswith("sync"):
            ids.add(self.node_id)
        if message["t"] == "ping_req":
            ids.add(message["target"])  # so a helper that has not met it yet can reach it
        ids.discard(recipient)  # it holds its own records
        now = self.clock.now_ms()
        records = []
        for node_id in ids:
            for kind in self._gossiped:
                record = self.store.get(node_id, kind)
                if record is not None and record.expires_ms > now:
                    records.append(record.to_wire())
        body = {"network": self.network, "msg": message, "records": records[:MAX_RECORDS]}
        return canonical.encode(body)

    async def _deliver(self, send: Send, body: bytes, queued_ms: int) -> None:
        async with self._limit:
            if self._mono_ms() - queued_ms > self.config.mesh.period_ms:
                # Waited a whole period for a connection slot: the protocol has moved on
                # (an ack after its probe timed out, news already re-sent), so drop it.
                self.dropped += 1
                return
            self.sent[str(send.message.get("t"))] += 1
            refusal: PeerTransportError | None = None
            try:
                await self.transport.send(send.address, send.node_id, body)
            except PeerTransportError as exc:
                refusal = exc
        if refusal is None or not refusal.reachable:
            return  # an unreachable peer is membership's to notice, by its missing ack
        if refusal.code == "duplicate_node_id":
            if self.conflict is None:
                self._conflicted(send.address, str(refusal))
        else:
            log.debug("gossip to %s refused: %s %s", send.address, refusal.code, refusal)

    def _conflicted(self, where: str, detail: str) -> None:
        self.conflict = {
            "code": "duplicate_node_id",
            "reported_by": where,
            "message": (
                f"another live node uses this node's id {self.node_id} ({detail}). This data "
                "directory is probably a copy of another node's: stop this node, remove its "
                "node key, and start it again to get a new identity. Mesh gossip is stopped."
            ),
        }
        log.error("identity conflict: %s", self.conflict["message"])

    # -- incoming -------------------------------------------------------------------------

    def receive(self, sender: str, body: bytes) -> dict[str, Any]:
        """Handle one authenticated gossip request from ``sender``.

        :raises RefusedError: malformed (a decode error's code, ``bad_shape``,
            ``sender_mismatch``), ``wrong_network``, or ``duplicate_node_id``.
        """
        try:
            document = canonical.decode(body, max_size=max(len(body), 1))
        except DecodeError as exc:
            raise RefusedError(exc.code, str(exc)) from None
        message, records = self._check_shape(document)
        if document["network"] != self.network:
            raise RefusedError("wrong_network", f"this node is in network {self.network!r}")
        if message["from"] != sender:
            raise RefusedError("sender_mismatch", "msg.from must be the request's signer")
        self._check_identity(sender, message)
        outcomes = Counter(self._offer(item) for item in records)
        self._last_heard[sender] = self.clock.now_ms()
        self._dispatch(self.membership.receive(message, self._mono_ms()))
        return {"ok": True, "records": dict(outcomes)}

    @staticmethod
    def _check_shape(document: object) -> tuple[dict[str, Any], list[Any]]:
        if not isinstance(document, dict) or set(document) != {"network", "msg", "records"}:
            raise RefusedError("bad_shape", "body must be {network, msg, records}")
        message, records = document["msg"], document["records"]
        if not isinstance(records, list) or len(records) > MAX_RECORDS:
            raise RefusedError("bad_shape", f"records must be a list of at most {MAX_RECORDS}")
        if not (
            isinstance(message, dict)
            and isinstance(message.get("t"), str)
            and isinstance(message.get("from"), str)
            and isinstance(message.get("addr"), str)
            and type(message.get("inc")) is int
            and type(message.get("adv", 0)) is int
            and type(message.get("seq", 0)) is int
            and isinstance(message.get("updates", []), list)
            and isinstance(document["network"], str)
        ):
            raise RefusedError("bad_shape", "msg needs t, from, addr, inc (and int seq, adv)")
        return message, records

    def _check_identity(self, sender: str, message: dict[str, Any]) -> None:
        if sender == self.node_id:
            if message["inc"] < self.membership.incarnation and self.conflict is None:
                self._conflicted(message["addr"], f"it runs at {message['addr']} since earlier")
            raise RefusedError(
                "duplicate_node_id", f"node id {sender} is in use by a live node at {self.url}"
            )
        where = self._alive_elsewhere(sender, message["addr"])
        if where is not None:
            raise RefusedError(
                "duplicate_node_id", f"node id {sender} is in use by a live node at {where}"
            )

    def _offer(self, item: object) -> str:
        try:
            record = parse_record(item)
            if record.author == self.node_id and record.kind in self._gossiped:
                return "own"  # ours, relayed back: we hold the newest already
            now = self.clock.now_ms()
            held = self.store.get(record.author, record.kind)
            if held is not None and held.expires_ms > now:
                # Most gossiped records are ones this node holds already: no signature
                # check for what would change nothing (the same record, or an older one).
                if record == held:
                    return "duplicate"
                if record.seq < held.seq:
                    return "stale"
            verify_record(record, now, skew_ms=self.config.mesh.skew_ms)
            self._check_record(record)
            return self.store.offer(record, now, verified=True)
        except RecordError as exc:
            self.refused[exc.code] += 1
            log.debug("refused a gossiped record: %s", exc)
            return "refused"

    def _check_record(self, record: SignedRecord) -> None:
        if record.kind == ADVERT:
            self.directory.check_advert(record)
            return
        check = self._record_checks.get(record.kind)
        if check is not None:
            check(record)
            return
        if record.kind != PEER:
            raise RecordError("not_gossiped", f"{record.kind} records are not gossiped")
        info = parse_peer(record)
        if info.network != self.network:
            raise RecordError("wrong_network", f"a peer of network {info.network!r}")
        where = self._alive_elsewhere(record.author, info.url)
        if where is not None:
            raise RecordError("duplicate_node_id", f"{record.author} is alive at {where}")

    def _alive_elsewhere(self, node_id: str, url: str) -> str | None:
        """The address where ``node_id`` is alive, if that is not ``url``."""
        held = self.membership.member(node_id)
        if held and held.state == ALIVE and held.address and held.address != url:
            return held.address
        return None

    # -- views ----------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """How many members are in each state."""
        states = Counter(m.state for m in self.membership.members())
        return {ALIVE: states[ALIVE], SUSPECT: states[SUSPECT], DEAD: states[DEAD]}

    def health(self) -> dict[str, object]:
        """The mesh part of the node's health report."""
        counts = self.counts()
        return {
            "peer_count": counts[ALIVE] + counts[SUSPECT],
            "peers": counts,
            "url": self.url,
            "incarnation": self.membership.incarnation,
            "identity_conflict": self.conflict,
            "advert": self._advert.as_body() if self._advert is not None else None,
            "refused_records": dict(self.refused),
            "load": {
                **self.guard.load.snapshot(self.clock.monotonic()),
                "gossip_dropped": self.dropped,
                "stalled_ms": self._stalled_ms,
                "gossip_sent": dict(self.sent),
            },
        }

    @property
    def advert(self) -> Advert | None:
        """This node's current advert (None until first published)."""
        return self._advert

    def adverts(self) -> list[tuple[str, Advert]]:
        """(node id, advert) of every member not declared dead that holds a well-formed one.

        Suspects are included: suspicion is often only a peer too busy to answer in time,
        and one that is really gone fails its offer fast (see :meth:`suspected`)."""
        out = []
        for member in self.membership.members():
            if member.state not in (ALIVE, SUSPECT):
                continue
            advert = self.directory.advert(member.node_id)
            if advert is not None:
                out.append((member.node_id, advert))
        return out

    def suspected(self, node_id: str) -> bool:
        """Whether the member is suspected of having failed (offered work last)."""
        return self.membership.state_of(node_id) == SUSPECT

    def peers(self) -> list[PeerView]:
        """Every known peer: identity, addresses, state, last heard, and its advert."""
        out = []
        mono_now, wall_now = self._mono_ms(), self.clock.now_ms()
        for member in self.membership.members():
            since = member.since_ms
            info = self.directory.info(member.node_id)
            out.append(
                PeerView(
                    node_id=member.node_id,
                    url=member.address,
                    addrs=info.addrs if info else (),
                    api_port=info.api_port if info else None,
                    version=info.version if info else None,
                    state=member.state,
                    incarnation=member.incarnation,
                    state_since_ms=None if since is None else wall_now - (mono_now - since),
                    last_heard_ms=self._last_heard.get(member.node_id),
                    advert=self.directory.advert(member.node_id),
                )
            )
        return sorted(out, key=lambda p: (p.state != ALIVE, p.node_id))
