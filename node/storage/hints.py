"""Durable hints: writes a coordinator could not deliver to a replica, kept until replayed.

One small LMDB environment (``<first disk>/hints``), synced on every commit. A hint
names the target node and the object; replay sends the object's newest copy, so one
hint per (target, object) is enough and a newer hint replaces an older one.
"""

from __future__ import annotations

import os
import struct
import threading
from dataclasses import dataclass
from typing import Final

import lmdb

from cairn.errors import DiskFull, DiskReadOnly, DiskUnavailable
from cairn.types import Version

from . import format as fmt

__all__ = ["Hint", "HintStore"]

_VALUE: Final = struct.Struct("<QIIBI")  # physical_ms, logical, node_id, deleted, partition
_TARGET: Final = struct.Struct(">I")
MAP_SIZE: Final = 1 << 30


@dataclass(frozen=True, slots=True)
class Hint:
    target: int
    bucket: str
    key: bytes
    version: Version
    deleted: bool
    partition: int


class HintStore:
    """Hints by target node. Thread-safe; every ``add`` is durable when it returns."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._env = self._open()
        self._count = self._env.stat()["entries"]

    def _open(self) -> lmdb.Environment:
        os.makedirs(self.path, exist_ok=True)
        return lmdb.open(self.path, map_size=MAP_SIZE, max_dbs=1, writemap=False,
                         readahead=False)

    def close(self) -> None:
        with self._lock:
            self._env.close()

    def reopen(self) -> None:
        """Open the store again at its path: its disk was wiped or replaced and taken
        back, so the files open until now are gone (hints written to them since are
        lost; anti-entropy covers those objects)."""
        with self._lock:
            self._env.close()
            self._env = self._open()
            self._count = self._env.stat()["entries"]

    def __len__(self) -> int:
        return self._count

    def add(self, hints: list[Hint]) -> None:
        """Record hints (keeping the newest version per target and object).

        Raises:
            DiskUnavailable: (or DiskFull, DiskReadOnly) the hints could not be stored;
                nothing of this call was kept.
        """
        with self._lock:
            added = 0
            try:
                with self._env.begin(write=True) as txn:
                    for h in hints:
                        k = _TARGET.pack(h.target) + fmt.object_key(h.bucket.encode("ascii"),
                                                                    h.key)
                        old = txn.get(k)
                        if old is not None and _decode_version(old) >= h.version:
                            continue
                        added += old is None
                        txn.put(k, _VALUE.pack(h.version.physical_ms, h.version.logical,
                                               h.version.node_id, int(h.deleted), h.partition))
            except lmdb.Error as exc:
                raise _unavailable(self.path, exc) from exc
            self._count += added

    def remove(self, hint: Hint) -> None:
        """Forget a replayed hint, unless a newer one for the same object came meanwhile."""
        k = _TARGET.pack(hint.target) + fmt.object_key(hint.bucket.encode("ascii"), hint.key)
        with self._lock:
            try:
                with self._env.begin(write=True) as txn:
                    old = txn.get(k)
                    removed = old is not None and _decode_version(old) <= hint.version
                    if removed:
                        txn.delete(k)
            except lmdb.Error as exc:
                raise _unavailable(self.path, exc) from exc
            self._count -= removed

    def targets(self) -> dict[int, int]:
        """Pending hints per target node."""
        out: dict[int, int] = {}
        with self._lock, self._env.begin() as txn:
            for k in txn.cursor().iternext(keys=True, values=False):
                target = _TARGET.unpack_from(k)[0]
                out[target] = out.get(target, 0) + 1
        return out

    def pending(self, target: int, limit: int) -> list[Hint]:
        """Up to ``limit`` hints for ``target`` (a short read transaction)."""
        prefix = _TARGET.pack(target)
        out: list[Hint] = []
        with self._lock, self._env.begin() as txn:
            cur = txn.cursor()
            if not cur.set_range(prefix):
                return out
            for k, v in cur:
                if not k.startswith(prefix) or len(out) >= limit:
                    break
                bucket, key = fmt.split_object_key(k[len(prefix):])
                ms, logical, node, deleted, partition = _VALUE.unpack(v)
                out.append(Hint(target, bucket.decode("ascii"), key,
                                Version(ms, logical, node), bool(deleted), partition))
        return out


def _unavailable(path: str, exc: lmdb.Error) -> DiskUnavailable:
    text = str(exc)
    if "No space left" in text or "MDB_MAP_FULL" in text:
        return DiskFull(f"hint store {path} is full: {text}")
    if "Read-only" in text:
        return DiskReadOnly(f"hint store {path} is read-only: {text}")
    return DiskUnavailable(f"hint store {path} failed: {text}")


def _decode_version(raw: bytes) -> Version:
    ms, logical, node, _deleted, _partition = _VALUE.unpack(raw)
    return Version(ms, logical, node)
