"""Checkpoints: a Merkle root over every chain head, and proofs anyone checks (§8)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgecoder.errors import LedgerError
from edgecoder.ledger.checkpoints import (
    NO_CHECKPOINT,
    build,
    leaf,
    merkle_root,
    parse_checkpoint,
    verify_proof,
)
from edgecoder.security.identity import NodeIdentity

NODES = sorted(NodeIdentity(bytes([i]) * 32).node_id for i in range(1, 8))


def heads(n: int) -> dict[str, tuple[int, str]]:
    return {node: (i + 1, f"{i:064x}") for i, node in enumerate(NODES[:n])}


@given(st.integers(1, 7))
def test_every_listed_head_proves_its_inclusion_and_nothing_else_does(n: int) -> None:
    checkpoint = build(3, NO_CHECKPOINT, heads(n))
    root = bytes.fromhex(checkpoint.root)
    for node, seq, head in checkpoint.heads:
        proof = checkpoint.proof_for(node)
        assert proof is not None
        assert verify_proof(leaf(node, seq, head), proof, root)
        assert not verify_proof(leaf(node, seq + 1, head), proof, root)  # another head
    assert checkpoint.proof_for("z" * 32) is None


def test_a_checkpoint_survives_the_wire_and_chains_to_the_one_before() -> None:
    first = build(1, NO_CHECKPOINT, heads(3))
    second = build(2, first.hash, {**heads(3), NODES[0]: (9, "ab" * 32)})
    assert parse_checkpoint(second.body()) == second
    assert second.prev == first.hash != second.hash
    assert build(1, NO_CHECKPOINT, {NODES[0]: (0, "00" * 32)}).heads == ()  # empty chains
    assert merkle_root([]) == bytes(32)


@pytest.mark.parametrize(
    "change",
    [{"root": "ab" * 32}, {"epoch": -1}, {"prev": "x"}, {"heads": [["nope", 1, "00" * 32]]},
     {"heads": "all"}],
)  # fmt: skip
def test_a_checkpoint_whose_root_or_form_is_wrong_is_refused(change: dict[str, object]) -> None:
    body = {**build(1, NO_CHECKPOINT, heads(4)).body(), **change}
    with pytest.raises(LedgerError) as caught:
        parse_checkpoint(body)
    assert caught.value.code == "bad_checkpoint"


def test_heads_out_of_order_are_refused() -> None:
    body = build(1, NO_CHECKPOINT, heads(3)).body()
    body["heads"] = list(reversed(body["heads"]))
    with pytest.raises(LedgerError, match="sorted"):
        parse_checkpoint(body)
