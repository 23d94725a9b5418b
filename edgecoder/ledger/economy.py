"""This node in its network's economy: the asyncio driver of the genesis machine, the
vouches it knows, and the ledger head it announces.

Every :data:`TICK_S` (and whenever its credits change) the :class:`Economy` reads the
ledger heads its live peers gossip, feeds them to :class:`~edgecoder.ledger.genesis.Genesis`
and carries out what it decides: making or adopting the network key (pinned in the
database), vouching as the key's holder, claiming an allowance; then it re-signs this
node's own head when what it says has changed. :class:`VouchBook` holds every vouch this
node knows that is valid under the pinned network key: the ledger's rules resolve an
``allowance`` through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from pathlib import Path

from edgecoder.clock import Clock
from edgecoder.config import Config
from edgecoder.errors import EdgeCoderError, LedgerError, RecordError
from edgecoder.events import BalanceChanged, Event, EventHub
from edgecoder.ledger.book import Ledger, Posting
from edgecoder.ledger.entries import TREASURY
from edgecoder.ledger.genesis import (
    Adopt,
    Claim,
    CreateKey,
    Genesis,
    GenesisAction,
    GenesisConfig,
    Holding,
    PeerHead,
    VouchFor,
)
from edgecoder.ledger.heads import HEAD, Head, parse_head
from edgecoder.ledger.vouches import Vouch, make_vouch, parse_vouch
from edgecoder.ledger.vouching import Already, AsNetwork, plan_vouch, standing_of
from edgecoder.mesh.node import MeshNode
from edgecoder.security.identity import NodeIdentity
from edgecoder.storage import ledger_rows, node_meta
from edgecoder.storage.database import Database
from edgecoder.storage.network_key import NETWORK_KEY_FILE, create_network_key, load_network_key
from edgecoder.wire.records import SignedRecord

__all__ = ("PINNED", "TICK_S", "Economy", "VouchBook", "check_head_record")

log = logging.getLogger(__name__)

TICK_S = 1.0
PINNED = "ledger.network_key"
"""The node_meta key of the network key this node pinned."""


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
    ) -> None:
        self.identity = identity
        self.config = config
        self.clock = clock
        self.database = database
        self.ledger = ledger
        self.book = book
        self.mesh = mesh
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

    def peers(self) -> list[PeerHead]:
        """The heads the live peers announce (malformed ones were refused at gossip)."""
        out = []
        for record in self.mesh.records_of(HEAD):
            with contextlib.suppress(LedgerError):
                out.append(parse_head(record.body).peer(record.author))
        return out

    async def tick(self) -> None:
        """One round: learn vouches, decide, act, announce."""
        peers = self.peers()
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
        self.publish_head()

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
        """Stop listening to the node's events."""
        self._subscription.close()
