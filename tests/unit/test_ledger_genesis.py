"""The economy's genesis: who makes the network key, who adopts it, who is vouched for."""

from __future__ import annotations

from edgecoder.ledger.genesis import (
    Adopt,
    Claim,
    CreateKey,
    Genesis,
    GenesisConfig,
    Holding,
    PeerHead,
    VouchFor,
)
from edgecoder.ledger.vouches import make_vouch
from edgecoder.security.identity import NodeIdentity

IDS = sorted((NodeIdentity(bytes([i]) * 32) for i in range(1, 6)), key=lambda i: i.node_id)
NETKEY = NodeIdentity(bytes([9]) * 32)
KEY = NETKEY.public_key.hex()
CFG = GenesisConfig(network="office", wait_ms=1000, window_ms=60_000, founders_max=3,
                    allowance_mc=500)  # fmt: skip
EMPTY = Holding(network_key="", key_created_ms=None, allowance=0, empty=True)


def _ids() -> list[str]:
    return sorted(i.node_id for i in IDS)


def test_only_the_smallest_node_founds_and_only_after_the_wait() -> None:
    first, second = _ids()[:2]
    peers = [PeerHead(second, "", 0)]
    assert Genesis(first, CFG, 0).tick(999, EMPTY, peers) == []
    assert Genesis(first, CFG, 0).tick(1000, EMPTY, peers) == [CreateKey()]
    assert Genesis(second, CFG, 0).tick(10_000, EMPTY, [PeerHead(first, "", 0)]) == []


def test_a_node_adopts_the_lowest_announced_key_while_its_chain_is_empty() -> None:
    me, a, b = _ids()[2], _ids()[0], _ids()[1]
    peers = [PeerHead(a, "bb" * 32, 0), PeerHead(b, "aa" * 32, 0)]
    assert Genesis(me, CFG, 0).tick(0, EMPTY, peers) == [Adopt("aa" * 32)]
    pinned = Holding("bb" * 32, None, 0, empty=True)
    assert Genesis(me, CFG, 0).tick(0, pinned, peers) == [Adopt("aa" * 32)]
    busy = Holding("bb" * 32, None, 500, empty=False)
    assert Genesis(me, CFG, 0).tick(0, busy, peers) == []  # its economy stays its own
    holder = Holding("bb" * 32, 0, 0, empty=True)
    assert Adopt("aa" * 32) not in Genesis(me, CFG, 0).tick(0, holder, peers)


def test_the_holder_vouches_for_itself_and_the_first_founders_within_the_window() -> None:
    me, *others = _ids()
    holding = Holding(KEY, key_created_ms=0, allowance=0, empty=True)
    peers = [PeerHead(n, KEY, 0) for n in others] + [PeerHead("z" * 32, "cc" * 32, 0)]
    actions = Genesis(me, CFG, 0).tick(100, holding, peers)
    assert actions == [VouchFor(me, 500), VouchFor(others[0], 500), VouchFor(others[1], 500)]
    after = Holding(KEY, 0, 0, True, issued=tuple(_vouch(n) for n in (me, *others[:2])))
    assert Genesis(me, CFG, 0).tick(200, after, peers) == [Claim(after.issued[0])]
    late = Holding(KEY, 0, 0, True)
    assert not any(isinstance(a, VouchFor) for a in Genesis(me, CFG, 0).tick(60_001, late, peers))


def test_a_node_claims_a_valid_vouch_for_itself_from_any_head_once() -> None:
    me, holder = _ids()[1], _ids()[0]
    mine = _vouch(me)
    forged = make_vouch(IDS[0], network="office", network_key=KEY, node=me, amount=500,
                        issued_ms=0)  # fmt: skip
    peers = [PeerHead(holder, KEY, 500, vouches=(forged, _vouch(_ids()[2]), mine))]
    holding = Holding(KEY, None, 0, empty=True)
    assert Genesis(me, CFG, 0).tick(0, holding, peers) == [Claim(mine)]
    claimed = Holding(KEY, None, 500, empty=False)
    assert Genesis(me, CFG, 0).tick(0, claimed, peers) == []
    assert Genesis(me, CFG, 0).tick(0, holding, [PeerHead(holder, KEY, 500, (forged,))]) == []


def _vouch(node: str) -> object:
    return make_vouch(NETKEY, network="office", network_key=KEY, node=node, amount=500,
                      issued_ms=0)  # fmt: skip
