"""This node in its network's economy: the asyncio driver of the genesis machine, the
vouches it knows, the ledger head it announces, and its peers' chains.

Every :data:`TICK_S` (and whenever its credits change) the :class:`Economy` reads the
ledger heads its live peers gossip, feeds them to :class:`~edgecoder.ledger.genesis.Genesis`
and carries out what it decides: making or adopting the network key (pinned in the
database), vouching as the key's holder, claiming an allowance; it fetches the entries
of peers' chains it lacks (:class:`~edgecoder.ledger.chains.PeerChains` verifies them),
accuses a peer that forked its chain with a blacklist entry whose evidence is the fork,
and spreads every blacklist entry it accepts to its peers; then it re-signs this node's
own head when what it says has changed. :class:`VouchBook` holds every vouch this node
knows that is valid under the pinned network key: the ledger's rules resolve an
``allowance`` through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections import Counter
from functools import partial
from pathlib import Path

from edgecoder.clock import Clock
from edgecoder.config import Config
from edgecoder.errors import (
    BlacklistError,
    EdgeCoderError,
    LedgerError,
    PeerTransportError,
    RecordError,
)
from edgecoder.events import BalanceChanged, Blacklisted, CheckpointSealed, Event, EventHub
from edgecoder.ledger.book import Ledger, Posting
from edgecoder.ledger.chains import Fork, PeerChains
from edgecoder.ledger.checkpoints import (
    CHECKPOINT,
    MAX_HEADS,
    NO_CHECKPOINT,
    Checkpoint,
    build,
    parse_checkpoint,
)
from edgecoder.ledger.entries import TREASURY, parse_entry
from edgecoder.ledger.genesis import (
    Adopt,
    Claim,
    CreateKey,
    Genesis,
    GenesisAction,
    GenesisConfig,
    Holding,
    VouchFor,
)
from edgecoder.ledger.heads import HEAD, Head, parse_head
from edgecoder.ledger.vouches import Vouch, make_vouch, parse_vouch
from edgecoder.ledger.vouching import Already, AsNetwork, plan_vouch, standing_of
from edgecoder.mesh.node import MeshNode
from edgecoder.mesh.peer_info import PEER
from edgecoder.security.blacklist import blacklist_entry
from edgecoder.security.identity import NodeIdentity, is_node_id
from edgecoder.storage import ledger_rows, node_meta
from edgecoder.storage.database import Database, transaction
from edgecoder.storage.network_key import NETWORK_KEY_FILE, create_network_key, load_network_key
from edgecoder.tasks.transport import MessageKind, TaskTransport
from edgecoder.wire.records import SignedRecord, parse_record

__all__ = (
    "PINNED",
    "TICK_S",
    "Economy",
    "VouchBook",
    "check_checkpoint_record",
    "check_head_record",
)

log = logging.getLogger(__name__)

TICK_S = 1.0
PINNED = "ledger.network_key"
"""The node_meta key of the network key this node pinned."""
ACCUSATIONS = "blacklist.own"
"""The node_meta key of this node's own blacklist entries (JSON), kept across restarts."""
FETCH_LIMIT = 256
"""Entries asked for, and served, per request."""
FETCHES_PER_TICK = 4
CHECKPOINT_META = "ledger.checkpoint"
"""The node_meta key of the newest checkpoint taken and this node's inclusion proof."""


def check_checkpoint_record(record: SignedRecord) -> None:
    """The gossip check of a peer's ``checkpoint`` record (for :class:`MeshNode`).

    :raises RecordError: its body is not a checkpoint whose root is its heads'.
    """
    try:
        parse_checkpoint(record.body)
    except LedgerError as exc:
        raise RecordError(exc.code, str(exc)) from None


def check_head_record(record: SignedRecord) -> None:
    """The gossip check of a peer's ``ledger_head`` record (for :class:`MeshNode`).

    :raises RecordError: its body is not a ledger head.
    """
    try:
        parse_head(record.body)
    except LedgerError as exc:
        raise RecordError(exc.code, str(exc)) from None


class VouchBook:
    """The vouches this node knows, and the network key they are judged under."""

    def __init__(self, network: str) -> None:
        self.network = network
        self.network_key = ""
        self._known: dict[str, Vouch] = {}

    def add(self, vouch: Vouch) -> bool:
        """Know ``vouch``; True if it is new and valid under the pinned key."""
        if vouch.hash in self._known or vouch.valid_for(self.network, self.network_key):
            return False
        self._known[vouch.hash] = vouch
        return True

    def lookup(self, ref: str, node: str) -> int | None:
        """What the vouch named ``ref`` grants ``node`` (None: no valid vouch)."""
        vouch = self._known.get(ref)
        if vouch is None or vouch.node != node:
            return None
        return vouch.amount

    def get(self, ref: str) -> Vouch | None:
        """The known valid vouch with hash ``ref``."""
        return self._known.get(ref)

    def for_node(self, node: str) -> list[Vouch]:
        """Valid vouches for ``node``."""
        return [v for v in self._known.values() if v.node == node]


class Economy:
    """Runs this node's part of the genesis and announces its ledger head."""

    def __init__(
        self,
        *,
        identity: NodeIdentity,
        config: Config,
        clock: Clock,
        database: Database,
        events: EventHub,
        ledger: Ledger,
        book: VouchBook,
        mesh: MeshNode,
        transport: TaskTransport,
    ) -> None:
        self.identity = identity
        self.config = config
        self.clock = clock
        self.database = database
        self.ledger = ledger
        self.book = book
        self.mesh = mesh
        self.transport = transport
        self.chains = PeerChains(book.lookup)
        self.events = events
        self.refused: Counter[str] = Counter()
        """Peers' segments refused, by code."""
        self._accusations: list[SignedRecord] = []
        self.checkpoint: Checkpoint | None = None
        """The newest checkpoint of the economy taken here."""
        self.proof: list[tuple[str, str]] | None = None
        """This node's inclusion proof in :attr:`checkpoint` (None: its head is not in it)."""
        self._tasks: set[asyncio.Task[None]] = set()
        cfg = config.ledger
        self.genesis = Genesis(
            identity.node_id,
            GenesisConfig(
                network=config.node.network,
                wait_ms=cfg.genesis_wait_s * 1000,
                window_ms=cfg.founding_window_s * 1000,
                founders_max=cfg.founders_max,
                allowance_mc=cfg.allowance_mc,
            ),
            clock.now_ms(),
        )
        self.network_key: NodeIdentity | None = None
        """The network key itself, when this node holds it."""
        self._key_created_ms: int | None = None
        self._issued: list[Vouch] = []
        self._announced: dict[str, object] | None = None
        self._changed = asyncio.Event()
        self._vouching = asyncio.Lock()
        self._subscription = events.subscribe(self._on_balance, {BalanceChanged.kind})
        self._spreading = events.subscribe(self._on_blacklisted, {Blacklisted.kind})

    @property
    def key_path(self) -> Path:
        """Where the network key is (or would be made)."""
        configured = self.config.ledger.network_key_file
        return Path(configured) if configured else self.config.node.data_dir / NETWORK_KEY_FILE

    async def open(self) -> None:
        """Load the pinned network key, the key itself if held, the vouches known; then
        read and verify this node's chain.

        :raises IdentityError: the network key file is unusable.
        :raises LedgerError: this node's chain does not verify.
        """
        meta = await self.database.run(node_meta.read_all)
        held = await asyncio.to_thread(load_network_key, self.key_path)
        pinned = meta.get(PINNED, "")
        if held is not None:
            if pinned and pinned != held.public_key.hex():
                log.warning("ledger: the network key at %s is not the one this node pinned; "
                            "ignoring it", self.key_path)  # fmt: skip
            else:
                self.network_key = held
                if not pinned:  # an operator's key file: pinned like a made or adopted key,
                    # so what this database holds is judged under it even without the file
                    await self._pin(held.public_key.hex())
                pinned = held.public_key.hex()
                self._key_created_ms = int(meta.get("ledger.key_created_ms", "0"))
        self.book.network_key = pinned
        for document in await self.database.run(ledger_rows.vouches):
            try:
                vouch = parse_vouch(document)
            except LedgerError:
                continue
            self.book.add(vouch)
            as_network = vouch.voucher_key == pinned and self.network_key is not None
            if as_network or vouch.voucher == self.identity.node_id:  # or with standing
                self._issued.append(vouch)
        await self.ledger.open()
        me = self.identity.node_id
        heads = await self.database.run(ledger_rows.chain_heads)
        for node in sorted(set(heads) - {me}):
            entries = await self.database.run(partial(ledger_rows.entries_of, node=node))
            try:
                self.chains.load(node, entries)
            except LedgerError as exc:
                log.warning("ledger: the chain held for %s no longer verifies: %s", node, exc)
        saved = json.loads(meta.get(CHECKPOINT_META, "null"))
        if saved is not None:
            with contextlib.suppress(LedgerError, KeyError, TypeError, ValueError):
                self.checkpoint = parse_checkpoint(saved["checkpoint"])
                steps = saved["proof"]
                self.proof = None if steps is None else [(str(a), str(b)) for a, b in steps]
        for item in json.loads(meta.get(ACCUSATIONS, "[]")):
            record = parse_record(item)
            self._accusations.append(record)
            with contextlib.suppress(BlacklistError):
                self.mesh.guard.apply(record)

    def _on_balance(self, event: Event) -> None:
        self._changed.set()

    def head(self) -> Head:
        """What this node announces of its chain."""
        state = self.ledger.state
        return Head(self.book.network_key, state.seq, state.head, state.balance, state.held,
                    state.allowance, tuple(self._issued))  # fmt: skip

    def publish_head(self) -> None:
        """Re-sign this node's head record if what it says changed."""
        body = self.head().body()
        if body != self._announced:
            self.mesh.publish_record(HEAD, body)
            self._announced = body

    def heads(self) -> list[tuple[SignedRecord, Head]]:
        """The heads the live peers announce (malformed ones were refused at gossip)."""
        out = []
        for record in self.mesh.records_of(HEAD):
            with contextlib.suppress(LedgerError):
                out.append((record, parse_head(record.body)))
        return out

    async def tick(self) -> None:
        """One round: learn vouches, decide, act, follow the peers' chains, announce."""
        heads = self.heads()
        peers = [head.peer(record.author) for record, head in heads]
        fresh = [v for p in peers for v in p.vouches if self.book.add(v)]
        state = self.ledger.state
        holding = Holding(
            network_key=self.book.network_key,
            key_created_ms=self._key_created_ms if self.network_key is not None else None,
            allowance=state.allowance,
            empty=state.seq == 0,
            issued=tuple(self._issued),
        )
        for action in self.genesis.tick(self.clock.now_ms(), holding, peers):
            await self._do(action)
        if fresh:
            await self._keep(fresh, self.clock.now_ms())
        await self._follow(heads)
        await self._checkpoints(heads)
        self.publish_head()

    # -- checkpoints ----------------------------------------------------------------------

    def held_heads(self) -> dict[str, tuple[int, str]]:
        """Every chain head this node holds, its own included: node → (seq, hash)."""
        held = {n: (s.seq, s.head) for n, s in self.chains.chains.items() if s.seq}
        own = self.ledger.state
        if own.seq:
            held[self.identity.node_id] = (own.seq, own.head)
        return held

    async def _checkpoints(self, heads: list[tuple[SignedRecord, Head]]) -> None:
        """Take the newest checkpoint the economy's leaders sealed; seal one when this node
        leads an epoch that has none."""
        mine = self.book.network_key
        if not mine:
            return
        members = {r.author for r, h in heads if h.network_key == mine}
        newest = self.checkpoint
        for record in self.mesh.records_of(CHECKPOINT):
            if record.author not in members:
                continue
            with contextlib.suppress(LedgerError):
                found = parse_checkpoint(record.body)
                if newest is None or found.epoch > newest.epoch:
                    newest = found
                    await self._take(found, record.author)
        epoch = self.clock.now_ms() // (self.config.ledger.epoch_s * 1000)
        leader = min(members | {self.identity.node_id})
        if leader == self.identity.node_id and (newest is None or newest.epoch < epoch):
            prev = newest.hash if newest is not None else NO_CHECKPOINT
            held = self.held_heads()
            if len(held) > MAX_HEADS:
                log.warning("ledger: %d chains are more than a checkpoint lists (%d): none "
                            "sealed", len(held), MAX_HEADS)  # fmt: skip
                return
            sealed = build(epoch, prev, held)
            self.mesh.publish_record(CHECKPOINT, sealed.body())
            await self._take(sealed, self.identity.node_id)

    async def _take(self, checkpoint: Checkpoint, author: str) -> None:
        """Keep ``checkpoint`` as the newest, with this node's proof in it; say so when a
        head it lists disagrees with the chain held here (the chain sync looks closer)."""
        own = self.ledger.state
        for node, seq, head in checkpoint.heads:
            if node == self.identity.node_id:
                held = own.head if seq == own.seq else None
            else:
                held = self.chains.hash_at(node, seq)
            if held is not None and held != head:
                log.warning("ledger: checkpoint %d lists %s#%d as %s…, held here as %s…",
                            checkpoint.epoch, node, seq, head[:12], held[:12])  # fmt: skip
        proof = checkpoint.proof_for(self.identity.node_id)
        document = json.dumps({"checkpoint": checkpoint.body(), "proof": proof})
        await self.database.run(lambda c: node_meta.write(c, CHECKPOINT_META, document))
        self.checkpoint, self.proof = checkpoint, proof
        self.events.publish(CheckpointSealed(checkpoint.epoch, checkpoint.hash, checkpoint.root,
                                             author, proof is not None))  # fmt: skip

    # -- peers' chains --------------------------------------------------------------------

    async def _follow(self, heads: list[tuple[SignedRecord, Head]]) -> None:
        """Fetch what the peers of this economy have appended since this node last looked."""
        mine, shut_out = self.book.network_key, self.mesh.guard.blacklist.is_blacklisted
        ours = {r.author: (r, h) for r, h in heads
                if mine and h.network_key == mine and not shut_out(r.author)}  # fmt: skip
        wanted = self.chains.wanted({n: (h.seq, h.hash) for n, (_, h) in ours.items()})
        jobs = [self._fetch(w.node, w.after, bytes.fromhex(ours[w.node][0].key))
                for w in wanted[:FETCHES_PER_TICK]]  # fmt: skip
        await asyncio.gather(*jobs)

    async def _fetch(self, node: str, after: int, key: bytes) -> None:
        try:
            answer = await self.transport.post(
                node, MessageKind.ENTRIES, {"node": node, "after": after, "limit": FETCH_LIMIT}
            )
            entries = [parse_entry(e) for e in _list(answer.get("entries"))]
            learnt = [parse_vouch(d) for d in _list(answer.get("vouches"))[: 2 * FETCH_LIMIT]]
            learnt = [v for v in learnt if self.book.add(v)]
            if learnt:  # kept: the chains that name them verify again after a restart
                await self._keep(learnt, self.clock.now_ms())
            overlap = self.chains.overlap(node, entries)
            held = {}
            for seq in overlap:
                entry = await self.database.run(partial(ledger_rows.entry_at, node=node, seq=seq))
                if entry is not None:
                    held[seq] = entry
            taken, fork = self.chains.accept(node, key, entries, held)
        except PeerTransportError as exc:
            log.debug("ledger: fetching %s's chain: %s", node, exc)
            return
        except LedgerError as exc:
            self.refused[exc.code] += 1
            log.warning("ledger: %s's chain refused: %s", node, exc)
            return
        if taken:

            def store(conn: sqlite3.Connection) -> None:
                with transaction(conn):
                    ledger_rows.append_entries(conn, taken)

            await self.database.run(store)
        if fork is not None:
            await self._accuse(fork, key)

    async def serve_entries(self, body: object) -> dict[str, object]:
        """A peer's request for a chain's entries: ``{"node", "after", "limit"}``.

        :raises LedgerError: a malformed request (``bad_request``).
        """
        if not isinstance(body, dict) or set(body) != {"node", "after", "limit"}:
            raise LedgerError("bad_request", "body must be {node, after, limit}")
        node, after, limit = body["node"], body["after"], body["limit"]
        if not isinstance(node, str) or not is_node_id(node):
            raise LedgerError("bad_request", "node must be a node id")
        if type(after) is not int or type(limit) is not int or after < 0 or limit < 1:
            raise LedgerError("bad_request", "after must be 0 or more, limit 1 or more")
        count = min(limit, FETCH_LIMIT)
        entries = await self.database.run(lambda c: ledger_rows.entries_of(c, node, after, count))
        vouches = []
        for entry in entries:
            if entry.entry.kind == "allowance":
                vouch = self.book.get(entry.entry.ref)
                if vouch is not None:
                    vouches.append(vouch.as_json())
        return {"entries": [e.as_json() for e in entries], "vouches": vouches}

    # -- forks and the blacklist ----------------------------------------------------------

    async def _accuse(self, fork: Fork, key: bytes) -> None:
        """Blacklist a node that forked its chain, with the fork as evidence, and spread it."""
        guard = self.mesh.guard
        if guard.blacklist.is_blacklisted(fork.node):
            return
        record = blacklist_entry(self.identity, self._accusations, fork.node,
                                 "signed two ledger entries for one place in its chain",
                                 "ledger_fork", fork.evidence(key),
                                 self.clock.now_ms())  # fmt: skip
        guard.apply(record)
        accusations = [*self._accusations, record]
        saved = json.dumps([r.to_wire() for r in accusations])
        await self.database.run(lambda c: node_meta.write(c, ACCUSATIONS, saved))
        self._accusations = accusations
        log.warning("ledger: %s forked its chain at entry %d: blacklisted", fork.node,
                    fork.held.entry.seq)  # fmt: skip
        self.events.publish(
            Blacklisted(fork.node, self.identity.node_id, str(record.body["reason"]))
        )

    def _on_blacklisted(self, event: Event) -> None:
        assert isinstance(event, Blacklisted)
        job = asyncio.ensure_future(self._spread(event.author))
        self._tasks.add(job)
        job.add_done_callback(self._tasks.discard)

    async def _spread(self, author: str) -> None:
        """Send ``author``'s blacklist entries to every live peer but it (they apply what
        they lack, and spread it on in turn: each node forwards each entry once)."""
        records = [r.to_wire() for r in self.mesh.guard.blacklist.entries_by(author)]
        if not records:
            return
        peers = [r.author for r in self.mesh.records_of(PEER) if r.author != author]

        async def send(node: str) -> None:
            with contextlib.suppress(PeerTransportError):
                await self.transport.post(node, MessageKind.RECORDS, {"records": records})

        await asyncio.gather(*(send(node) for node in peers))

    async def _keep(self, vouches: list[Vouch], now: int) -> None:
        def write(conn: sqlite3.Connection) -> None:
            for v in vouches:
                ledger_rows.store_vouch(conn, v.hash, v.node, v.voucher, v.as_json(), now)

        await self.database.run(write)

    async def _do(self, action: GenesisAction) -> None:
        if isinstance(action, CreateKey):
            key = await asyncio.to_thread(create_network_key, self.key_path)
            now = self.clock.now_ms()
            await self.database.run(lambda c: node_meta.write(c, "ledger.key_created_ms", str(now)))
            await self._pin(key.public_key.hex())
            self.network_key, self._key_created_ms = key, now
            log.info("ledger: founded the economy of network %r (network key %s… at %s)",
                     self.config.node.network, key.public_key.hex()[:16],
                     self.key_path)  # fmt: skip
        elif isinstance(action, Adopt):
            await self._pin(action.network_key)
            log.info("ledger: joined the economy of network key %s…", action.network_key[:16])
        elif isinstance(action, VouchFor):
            await self.vouch(action.node, action.amount)
        elif isinstance(action, Claim):
            await self._claim(action.vouch)

    async def _pin(self, key: str) -> None:
        await self.database.run(lambda c: node_meta.write(c, PINNED, key))
        self.book.network_key = key

    async def vouch(self, node: str, amount: int) -> Vouch:
        """As the network key's holder, vouch for ``node`` (the operator's command too).

        :raises EdgeCoderError: this node does not hold the network key.
        """
        key = self.network_key
        if key is None:
            raise EdgeCoderError("this node does not hold the network key")
        vouch = make_vouch(key, network=self.config.node.network,
                           network_key=key.public_key.hex(), node=node, amount=amount,
                           issued_ms=self.clock.now_ms())  # fmt: skip
        now = self.clock.now_ms()
        await self._keep([vouch], now)
        self.book.add(vouch)
        self._issued.append(vouch)
        log.info("ledger: vouched for %s (%d mc)", node, amount)
        return vouch

    async def vouch_for(self, node: str) -> Vouch:
        """The operator's vouch for ``node`` (``docs/ledger.md`` §5): with the network key
        when this node holds it, else as a node with standing in its next free slot (see
        :mod:`edgecoder.ledger.vouching`); kept, then announced in this node's head, where
        ``node`` finds it and claims its allowance. Again for the same node: the same vouch.

        :raises LedgerError: it may not vouch (the code says why).
        :raises StorageError: the vouch could not be kept.
        """
        async with self._vouching:  # one slot, one vouch
            me, network = self.identity.node_id, self.config.node.network
            state = self.ledger.state
            head = self.mesh.store.get(node, HEAD)
            try:
                target_allowance = parse_head(head.body).allowance if head is not None else None
            except LedgerError:
                target_allowance = None
            plan = plan_vouch(
                me=me, target=node, network_key=self.book.network_key,
                holds_key=self.network_key is not None, issued=self._issued,
                standing=standing_of(me, state.allowance, self.book.for_node(me), network,
                                     self.book.network_key),
                target_allowance=target_allowance,
            )  # fmt: skip
            if isinstance(plan, Already):
                return plan.vouch
            if isinstance(plan, AsNetwork):
                vouch = await self.vouch(node, self.config.ledger.allowance_mc)
            else:
                vouch = make_vouch(self.identity, network=network,
                                   network_key=self.book.network_key, node=node,
                                   amount=self.config.ledger.allowance_mc,
                                   issued_ms=self.clock.now_ms(), slot=plan.slot,
                                   standing=plan.standing)  # fmt: skip
                await self._keep([vouch], self.clock.now_ms())
                self.book.add(vouch)
                self._issued.append(vouch)
                log.info("ledger: vouched for %s with standing, slot %d", node, plan.slot)
        self.publish_head()
        return vouch

    async def _claim(self, vouch: Vouch) -> None:
        now = self.clock.now_ms()
        await self._keep([vouch], now)
        self.book.add(vouch)
        await self.ledger.append(Posting("allowance", vouch.amount, TREASURY, vouch.hash))
        log.info("ledger: allowance of %d mc granted", vouch.amount)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set (a failed tick is logged; the next one tries again)."""
        while not stop.is_set():
            try:
                await self.tick()
            except EdgeCoderError as exc:
                log.warning("ledger: %s", exc)
            self._changed.clear()
            waits = {
                asyncio.ensure_future(stop.wait()),
                asyncio.ensure_future(self._changed.wait()),
            }
            await asyncio.wait(waits, timeout=TICK_S, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waits:
                waiter.cancel()

    def close(self) -> None:
        """Stop listening to the node's events and spreading."""
        self._subscription.close()
        self._spreading.close()
        for job in self._tasks:
            job.cancel()


def _list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise LedgerError("bad_answer", "expected a list")
    return value
