"""Partition hash trees for anti-entropy (docs/repair.md).

A partition's entries (objects and tombstones, in key order) fall into ``leaf_count``
leaves by a hash of their index key; each leaf hash covers (key, version, checksum,
deleted) of its entries, and the root covers the leaves. Two replicas whose roots match
hold the same versions; where they differ, only the differing leaves are listed.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from cairn.types import Version

__all__ = ["DIGEST_BYTES", "MAX_LEAVES", "Digest", "build_digest", "leaf_of"]

DIGEST_BYTES: Final = 16
MAX_LEAVES: Final = 4096
_ENTRY: Final = struct.Struct(">QIIIB")  # physical_ms, logical, node_id, checksum, deleted
_PERSON: Final = b"cairn.ae.leaf"


@dataclass(frozen=True, slots=True)
class Digest:
    """One partition's tree as one node holds it."""

    root: bytes
    leaves: tuple[bytes, ...]
    entries: int
    value_bytes: int = 0

    def differing(self, other: Digest) -> list[int]:
        """Leaves whose hashes differ (all of them if the trees have other shapes)."""
        if len(self.leaves) != len(other.leaves):
            return list(range(max(len(self.leaves), len(other.leaves))))
        return [i for i, (a, b) in enumerate(zip(self.leaves, other.leaves, strict=True))
                if a != b]


def leaf_of(okey: bytes, leaf_count: int) -> int:
    """The leaf of an index key (bucket, NUL, key); leaf_count is a power of two."""
    digest = hashlib.blake2b(okey, digest_size=4, person=_PERSON).digest()
    return int.from_bytes(digest, "big") & (leaf_count - 1)


def build_digest(entries: Iterable[tuple[bytes, Version, int, bool, int]], leaf_count: int
                 ) -> Digest:
    """Hash ``(okey, version, checksum, deleted, size)`` entries given in key order."""
    if leaf_count < 1 or leaf_count > MAX_LEAVES or leaf_count & (leaf_count - 1):
        raise ValueError(f"leaf_count must be a power of two in 1..{MAX_LEAVES}")
    hashers = [hashlib.blake2b(digest_size=DIGEST_BYTES) for _ in range(leaf_count)]
    count = total = 0
    for okey, version, checksum, deleted, size in entries:
        h = hashers[leaf_of(okey, leaf_count)]
        h.update(struct.pack(">H", len(okey)))
        h.update(okey)
        h.update(_ENTRY.pack(version.physical_ms, version.logical, version.node_id, checksum,
                             int(deleted)))
        count += 1
        total += size
    leaves = tuple(h.digest() for h in hashers)
    root = hashlib.blake2b(b"".join(leaves), digest_size=DIGEST_BYTES).digest()
    return Digest(root, leaves, count, total)
