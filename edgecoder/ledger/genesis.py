"""How a network's economy begins and who gets an allowance: a sans-I/O state machine.

(``docs/ledger.md`` §5.) :class:`Genesis` is told the time, what this node holds (the
network key it pinned, whether it holds that key, the vouches it issued, its allowance)
and the ledger heads its live peers announce; :meth:`Genesis.tick` answers with what to
do:

- no network key pinned and a peer announces one: :class:`Adopt` the lowest announced;
- none announced, ``wait_ms`` after start, and this node has the smallest id among the
  live members it knows: :class:`CreateKey` (it is the founder);
- a lower key than the pinned one is announced while this node's chain is still empty:
  :class:`Adopt` it (a simultaneous founding resolved the same way everywhere); once a
  chain has entries it stays in its economy, so two economies founded apart (two
  partitions, two labs under one network name) stay two;
- holding the network key within ``window_ms`` of its creation: :class:`Vouch` for
  itself and for every live peer of the network that has no allowance, at most
  ``founders_max`` in all;
- no allowance yet and a valid vouch for this node in any announced head (or issued by
  itself): :class:`Claim` it.

The driver carries the actions out (files, chain entries, records) and feeds the results
back through the next tick's inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgecoder.ledger.vouches import Vouch

__all__ = (
    "Adopt",
    "Claim",
    "CreateKey",
    "Genesis",
    "GenesisAction",
    "GenesisConfig",
    "Holding",
    "PeerHead",
    "VouchFor",
)


@dataclass(frozen=True, slots=True)
class GenesisConfig:
    """``[ledger]`` settings the genesis depends on."""

    network: str
    wait_ms: int = 30_000
    window_ms: int = 3_600_000
    founders_max: int = 8
    allowance_mc: int = 100_000


@dataclass(frozen=True, slots=True)
class PeerHead:
    """What a live peer's signed ledger head says."""

    node: str
    network_key: str
    """Hex, or empty: it has pinned none yet."""
    allowance: int
    vouches: tuple[Vouch, ...] = ()
    """Vouches it issued."""


@dataclass(frozen=True, slots=True)
class Holding:
    """What this node holds now."""

    network_key: str
    """The pinned network key (hex), or empty."""
    key_created_ms: int | None
    """When this node made the network key it holds (None: it holds none)."""
    allowance: int
    """Its chain's allowance (0: none yet)."""
    empty: bool
    """Whether its chain has no entry yet."""
    issued: tuple[Vouch, ...] = ()
    """Vouches it issued (as the network key, or as a node with standing)."""


@dataclass(frozen=True, slots=True)
class CreateKey:
    """Make a network key, hold it, pin it."""


@dataclass(frozen=True, slots=True)
class Adopt:
    """Pin ``network_key``; compensate an allowance granted under another."""

    network_key: str


@dataclass(frozen=True, slots=True)
class VouchFor:
    """As the network key's holder, vouch for ``node``."""

    node: str
    amount: int


@dataclass(frozen=True, slots=True)
class Claim:
    """Append the allowance that ``vouch`` grants."""

    vouch: Vouch


GenesisAction = CreateKey | Adopt | VouchFor | Claim


class Genesis:
    """Decides, tick by tick, how this node joins its network's economy."""

    def __init__(self, node_id: str, config: GenesisConfig, started_ms: int) -> None:
        self.node_id = node_id
        self.config = config
        self.started_ms = started_ms

    def tick(self, now_ms: int, holding: Holding, peers: Sequence[PeerHead]) -> list[GenesisAction]:
        """What to do now (usually nothing)."""
        cfg = self.config
        announced = sorted({p.network_key for p in peers if p.network_key})
        key = holding.network_key
        if not key:
            if announced:
                return [Adopt(announced[0])]
            smallest = min([self.node_id, *(p.node for p in peers)])
            if now_ms - self.started_ms >= cfg.wait_ms and smallest == self.node_id:
                return [CreateKey()]
            return []
        if announced and announced[0] < key and holding.empty and holding.key_created_ms is None:
            return [Adopt(announced[0])]
        actions: list[GenesisAction] = []
        if holding.key_created_ms is not None and now_ms - holding.key_created_ms <= cfg.window_ms:
            vouched = {v.node for v in holding.issued}
            newcomers = sorted(p.node for p in peers if p.network_key == key and not p.allowance)
            wanting = [self.node_id, *newcomers]
            room = cfg.founders_max - len(vouched)
            for node in wanting:
                if room <= 0:
                    break
                if node not in vouched:
                    actions.append(VouchFor(node, cfg.allowance_mc))
                    vouched.add(node)
                    room -= 1
        if holding.allowance == 0:
            for vouch in [*holding.issued, *(v for p in peers for v in p.vouches)]:
                if vouch.node == self.node_id and vouch.valid_for(cfg.network, key) is None:
                    actions.append(Claim(vouch))
                    break
        return actions
