"""Whom an operator's vouch comes from: the network key's holder, or a node with standing.

(``docs/ledger.md`` §5.) :func:`plan_vouch` decides, from what this node holds, how it
vouches for another node when its operator asks (``edgecoder credits vouch``): with the
network key if it holds it (:class:`AsNetwork`); otherwise as a node with standing — one
whose own allowance the network key vouched for — in its next free slot up to
:data:`~edgecoder.ledger.vouches.VOUCH_QUOTA`, its own network vouch nested
(:class:`AsStanding`); or not at all, with the reason as a
:class:`~edgecoder.errors.LedgerError`. Asking again for a node it already vouched for
gives that vouch back (:class:`Already`): a slot is never spent twice on one node.
Pure: the driver (:class:`~edgecoder.ledger.economy.Economy`) signs and keeps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edgecoder.errors import LedgerError
from edgecoder.ledger.vouches import NETWORK, VOUCH_QUOTA, Vouch

__all__ = ("Already", "AsNetwork", "AsStanding", "VouchPlan", "plan_vouch", "standing_of")


@dataclass(frozen=True, slots=True)
class AsNetwork:
    """Sign with the network key."""


@dataclass(frozen=True, slots=True)
class AsStanding:
    """Sign with this node's key in ``slot``, nesting ``standing``."""

    slot: int
    standing: Vouch


@dataclass(frozen=True, slots=True)
class Already:
    """This node already vouched for the node: ``vouch``."""

    vouch: Vouch


VouchPlan = AsNetwork | AsStanding | Already


def standing_of(
    node: str, allowance: int, known: Iterable[Vouch], network: str, network_key: str
) -> Vouch | None:
    """``node``'s standing: the network key's vouch that granted its ``allowance`` (None:
    it has no allowance, or that allowance did not come from the network key)."""
    if allowance <= 0:
        return None
    for vouch in known:
        if (vouch.node == node and vouch.voucher == NETWORK and vouch.amount == allowance
                and vouch.valid_for(network, network_key) is None):  # fmt: skip
            return vouch
    return None


def plan_vouch(
    *,
    me: str,
    target: str,
    network_key: str,
    holds_key: bool,
    issued: Iterable[Vouch],
    standing: Vouch | None,
    target_allowance: int | None,
) -> VouchPlan:
    """How this node (``me``) vouches for ``target``.

    :param network_key: the pinned network key (empty: this node has joined no economy).
    :param holds_key: whether this node holds the network key itself.
    :param issued: the vouches this node issued so far (either way).
    :param standing: this node's standing (:func:`standing_of`).
    :param target_allowance: the allowance ``target``'s gossiped head announces (None:
        no head of it is known).
    :raises LedgerError: ``no_economy``, ``own_vouch`` (itself, without the key),
        ``has_allowance``, ``no_standing`` or ``vouch_quota``.
    """
    if not network_key:
        raise LedgerError("no_economy", "this node has not joined a credit economy yet "
                          "(no network key is pinned; wait for the genesis)")  # fmt: skip
    issued = list(issued)
    for vouch in issued:
        if vouch.node == target:
            return Already(vouch)
    if target == me and not holds_key:
        raise LedgerError("own_vouch", "a node cannot vouch for itself")
    if target_allowance:
        raise LedgerError("has_allowance", f"{target} already has an allowance of "
                          f"{target_allowance} mc")  # fmt: skip
    if holds_key:
        return AsNetwork()
    if standing is None:
        raise LedgerError("no_standing", "this node has no standing: only the network key's "
                          "holder, or a node whose own allowance the network key vouched for, "
                          "may vouch")  # fmt: skip
    used = {v.slot for v in issued if v.voucher == me}
    free = [slot for slot in range(1, VOUCH_QUOTA + 1) if slot not in used]
    if not free:
        raise LedgerError("vouch_quota", f"this node has vouched for {VOUCH_QUOTA} nodes, "
                          "its quota; the network key's holder may vouch for more")  # fmt: skip
    return AsStanding(free[0], standing)
