"""An order-independent digest of a membership view, split into buckets.

Each entry (node id, incarnation, state, advert version) hashes to 64 bits; a bucket's
hash is the XOR of its entries' hashes, so adding, removing or changing one entry costs
O(1) and two views with the same entries have the same hashes whatever order they were
built in. Anti-entropy compares the root (the XOR of every bucket) first and the bucket
hashes only when roots differ, then exchanges the entries of the differing buckets.
"""

from __future__ import annotations

import hashlib
import zlib

__all__ = ("ViewDigest", "bucket_of", "entry_hash")


def entry_hash(node_id: str, incarnation: int, state: str, advert: int) -> int:
    """The 64-bit hash of one view entry."""
    text = f"{node_id}\x00{incarnation}\x00{state}\x00{advert}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def bucket_of(node_id: str, buckets: int) -> int:
    """The bucket a node id falls in (the same on every node)."""
    return zlib.crc32(node_id.encode()) % buckets


class ViewDigest:
    """Bucketed XOR hashes over a set of view entries."""

    def __init__(self, buckets: int) -> None:
        if buckets < 1:
            raise ValueError("a digest needs at least one bucket")
        self.buckets = buckets
        self._hashes = [0] * buckets

    def toggle(self, node_id: str, incarnation: int, state: str, advert: int) -> None:
        """Add the entry if absent, remove it if present (XOR is its own inverse)."""
        bucket = bucket_of(node_id, self.buckets)
        self._hashes[bucket] ^= entry_hash(node_id, incarnation, state, advert)

    def root(self) -> str:
        """The whole view's hash, as 16 hex digits."""
        root = 0
        for value in self._hashes:
            root ^= value
        return f"{root:016x}"

    def hashes(self) -> list[str]:
        """Every bucket's hash, as 16 hex digits each."""
        return [f"{value:016x}" for value in self._hashes]

    def differing(self, theirs: list[str]) -> list[int]:
        """The buckets whose hash differs from ``theirs`` (all, if the counts differ)."""
        if len(theirs) != self.buckets:
            return list(range(self.buckets))
        return [i for i, value in enumerate(self.hashes()) if value != theirs[i]]
