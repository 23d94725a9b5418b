"""Checkpoints: the economy's ordering chain, a Merkle root over every chain head, per epoch.

(``docs/ledger.md`` §8.) The checkpoint leader of an epoch (the smallest live node id of
the economy) builds ``{"epoch", "prev", "root", "heads"}`` — ``heads`` every chain head it
holds as ``[node, seq, hash]`` sorted by node, ``root`` their Merkle root, ``prev`` the
hash of the checkpoint before (64 zeros for the first) — and signs it as a
``checkpoint`` record. A leaf is ``SHA-256(LEAF || node || seq as 8 bytes || hash)``, an
inner node ``SHA-256(NODE || left || right)``, an odd node out goes up as it is. Every
node checks the heads it also holds and keeps the inclusion proof of its own head: the
path that takes its leaf to the root, checkable by anyone with the root alone. The
anchoring issue puts the checkpoint's hash on Bitcoin. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from edgecoder.errors import LedgerError
from edgecoder.security.identity import is_node_id
from edgecoder.wire import canonical

__all__ = (
    "CHECKPOINT",
    "NO_CHECKPOINT",
    "Checkpoint",
    "build",
    "inclusion_proof",
    "leaf",
    "merkle_root",
    "parse_checkpoint",
    "verify_proof",
)

CHECKPOINT: Final = "checkpoint"
"""The record kind."""
NO_CHECKPOINT: Final = "0" * 64
_LEAF = b"edgecoder/checkpoint-leaf/v1\x00"
_NODE = b"edgecoder/checkpoint-node/v1\x00"
_HEX64 = re.compile(r"[0-9a-f]{64}")
MAX_HEADS: Final = 4096
"""Heads a gossiped checkpoint may list (a record travels whole): a leader holding more
seals none (an office, not a city; see ``docs/ledger.md``)."""


def leaf(node: str, seq: int, head: str) -> bytes:
    """The leaf of one chain head."""
    return hashlib.sha256(_LEAF + node.encode() + seq.to_bytes(8, "big") + bytes.fromhex(head))\
        .digest()  # fmt: skip


def _parent(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The root over ``leaves`` (in order); 32 zero bytes for none."""
    level = list(leaves)
    if not level:
        return bytes(32)
    while len(level) > 1:
        level = [_parent(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]  # fmt: skip
    return level[0]


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[tuple[str, str]]:
    """The path from leaf ``index`` to the root: ``[(side, sibling hex)]``, where side is
    ``"l"`` when the sibling is on the left."""
    path: list[tuple[str, str]] = []
    level, i = list(leaves), index
    while len(level) > 1:
        sibling = i ^ 1
        if sibling < len(level):
            path.append(("l" if sibling < i else "r", level[sibling].hex()))
        level = [_parent(level[j], level[j + 1]) if j + 1 < len(level) else level[j]
                 for j in range(0, len(level), 2)]  # fmt: skip
        i //= 2
    return path


def verify_proof(leaf_hash: bytes, path: Sequence[tuple[str, str]], root: bytes) -> bool:
    """Whether ``path`` takes ``leaf_hash`` to ``root``."""
    current = leaf_hash
    for side, sibling in path:
        other = bytes.fromhex(sibling)
        current = _parent(other, current) if side == "l" else _parent(current, other)
    return current == root


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One epoch's checkpoint."""

    epoch: int
    prev: str
    root: str
    heads: tuple[tuple[str, int, str], ...]

    def body(self) -> dict[str, Any]:
        """The record body."""
        return {"epoch": self.epoch, "prev": self.prev, "root": self.root,
                "heads": [list(h) for h in self.heads]}  # fmt: skip

    @property
    def hash(self) -> str:
        """The checkpoint's hash (what the next names as ``prev``, and what is anchored)."""
        return hashlib.sha256(canonical.encode(self.body())).hexdigest()

    def leaves(self) -> list[bytes]:
        """Its Merkle leaves, in order."""
        return [leaf(node, seq, head) for node, seq, head in self.heads]

    def proof_for(self, node: str) -> list[tuple[str, str]] | None:
        """``node``'s inclusion proof, or None when its head is not listed."""
        for index, (listed, _, _) in enumerate(self.heads):
            if listed == node:
                return inclusion_proof(self.leaves(), index)
        return None


def build(epoch: int, prev: str, heads: Mapping[str, tuple[int, str]]) -> Checkpoint:
    """The checkpoint of ``heads`` (node → (seq, hash); empty chains are left out)."""
    listed = tuple((n, s, h) for n, (s, h) in sorted(heads.items()) if s > 0)
    root = merkle_root([leaf(*h) for h in listed])
    return Checkpoint(epoch, prev, root.hex(), listed)


def parse_checkpoint(body: object) -> Checkpoint:
    """A checkpoint from a record body, its root recomputed.

    :raises LedgerError: malformed, or a root that is not its heads' (``bad_checkpoint``).
    """
    if not isinstance(body, Mapping) or set(body) != {"epoch", "prev", "root", "heads"}:
        raise LedgerError("bad_checkpoint", "a checkpoint is {epoch, prev, root, heads}")
    epoch, prev, root, heads = body["epoch"], body["prev"], body["root"], body["heads"]
    if type(epoch) is not int or epoch < 0:
        raise LedgerError("bad_checkpoint", "epoch must be a whole number")
    for name, value in (("prev", prev), ("root", root)):
        if not isinstance(value, str) or not _HEX64.fullmatch(value):
            raise LedgerError("bad_checkpoint", f"{name} must be 64 lowercase hex digits")
    if not isinstance(heads, list) or len(heads) > MAX_HEADS:
        raise LedgerError("bad_checkpoint", f"heads must be a list of at most {MAX_HEADS}")
    listed = []
    for item in heads:
        if (not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], str)
                or not is_node_id(item[0]) or type(item[1]) is not int or item[1] < 1
                or not isinstance(item[2], str) or not _HEX64.fullmatch(item[2])):  # fmt: skip
            raise LedgerError("bad_checkpoint", "a head is [node id, seq, hash]")
        listed.append((item[0], item[1], item[2]))
    if [h[0] for h in listed] != sorted({h[0] for h in listed}):
        raise LedgerError("bad_checkpoint", "heads must be sorted by node id, once each")
    checkpoint = Checkpoint(epoch, prev, root, tuple(listed))
    if merkle_root(checkpoint.leaves()).hex() != root:
        raise LedgerError("bad_checkpoint", "the root is not the heads' Merkle root")
    return checkpoint
