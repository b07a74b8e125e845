"""Floors: what plain Python does on the same disk, so engine figures have a yardstick.

- ``GroupCommitLog``: writer threads append records to one file; a leader thread
  ``fdatasync``s everything appended since the last sync and then releases every writer
  whose record it covered (one fsync shared per batch). With ``index`` set, the leader
  also commits one synced LMDB transaction holding an 80-byte entry per record of the
  batch, which is the whole durability ritual of docs/storage.md without the engine.
- ``sequential_write``: 1 MiB writes with an fsync every 8 MiB, one thread.
- ``RawStore``: values in one flat file, an LMDB map key -> (offset, length); a get is
  one short read transaction plus one ``os.pread`` on an open fd. With ``inline`` the
  value itself sits in LMDB (the floor for engine gets with ``inline_max_bytes``); with
  ``verify`` the value's CRC32C is also checked, as every engine read must (STYLE 2.4).
"""

from __future__ import annotations

import os
import struct
import threading
import time
from typing import Final

import crc32c
import lmdb

from ._timing import Sample

INDEX_ENTRY_BYTES: Final = 80  # the engine's fixed index entry size (format.INDEX_ENTRY)
SEQ_WRITE_BYTES: Final = 1 << 20
SEQ_SYNC_EVERY_BYTES: Final = 8 << 20
MAP_SIZE_BYTES: Final = 16 << 30
_LOCATION: Final = struct.Struct("<QII")  # offset, length, CRC32C


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class GroupCommitLog:
    """An append-only file with leader-based group commit (see module docstring)."""

    def __init__(self, directory: str, *, index: bool = False) -> None:
        self.path = os.path.join(directory, "floor.log")
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
        self._env = (
            lmdb.open(os.path.join(directory, "floor-index"), map_size=MAP_SIZE_BYTES,
                      sync=True, metasync=True, writemap=False, max_dbs=0)
            if index else None
        )
        self._append_lock = threading.Lock()
        self._cond = threading.Condition()
        self._appended = 0  # records written to the file (under _append_lock)
        self._synced = 0  # records known durable (under _cond)
        self._syncing = False
        self._keys: list[bytes] = []  # index keys appended since the last commit
        self._entry = b"\0" * INDEX_ENTRY_BYTES
        self.batches = 0

    def append_durable(self, key: bytes, record: bytes) -> None:
        """Append ``record`` and return once an fdatasync (and index commit) covers it."""
        with self._append_lock:
            _write_all(self._fd, record)
            self._appended += 1
            seq = self._appended
            self._keys.append(key)
        with self._cond:
            while self._synced < seq and self._syncing:
                self._cond.wait()
            if self._synced >= seq:
                return
            self._syncing = True  # this thread leads the next batch
        target = 0
        try:
            with self._append_lock:
                target = self._appended
                keys, self._keys = self._keys, []
            os.fdatasync(self._fd)
            if self._env is not None:
                with self._env.begin(write=True) as txn:
                    for k in keys:
                        txn.put(k, self._entry)
        finally:
            with self._cond:
                self._synced = max(self._synced, target)
                self._syncing = False
                self.batches += 1
                self._cond.notify_all()

    def close(self) -> None:
        os.close(self._fd)
        if self._env is not None:
            self._env.close()


def sequential_write(directory: str, duration_s: float) -> Sample:
    """1 MiB writes to a fresh file, fsync every 8 MiB, for ``duration_s`` (whole 8 MiB
    rounds only). ``Sample.ops`` counts 1 MiB writes."""
    path = os.path.join(directory, "floor.seq")
    chunk = os.urandom(SEQ_WRITE_BYTES)
    per_sync = SEQ_SYNC_EVERY_BYTES // SEQ_WRITE_BYTES
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        done = 0
        cpu_start = time.process_time()
        start = time.perf_counter()
        stop_at = start + duration_s
        while time.perf_counter() < stop_at:
            for _ in range(per_sync):
                _write_all(fd, chunk)
            os.fsync(fd)
            done += per_sync
        sample = Sample(done, time.perf_counter() - start, time.process_time() - cpu_start)
    finally:
        os.close(fd)
        os.unlink(path)
    return sample


class RawStore:
    """The raw read floor: LMDB key -> location, values in one flat file."""

    def __init__(self, directory: str, keys: list[bytes], value: bytes, *,
                 inline: bool = False, verify: bool = False) -> None:
        self._env = lmdb.open(os.path.join(directory, "raw-index"), map_size=MAP_SIZE_BYTES,
                              sync=False, metasync=False, writemap=False, max_dbs=0,
                              readahead=False, max_readers=512)
        self._inline = inline
        self._verify = verify
        crc = crc32c.crc32c(value)
        path = os.path.join(directory, "raw.values")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            with self._env.begin(write=True) as txn:
                for i, key in enumerate(keys):
                    if inline:
                        txn.put(key, value)
                    else:
                        _write_all(fd, value)
                        txn.put(key, _LOCATION.pack(i * len(value), len(value), crc))
            os.fsync(fd)
        finally:
            os.close(fd)
        self._env.sync(True)
        self._fd = os.open(path, os.O_RDONLY)

    def get(self, key: bytes) -> bytes:
        with self._env.begin(buffers=False) as txn:
            raw = txn.get(key)
        if raw is None:
            raise KeyError(key)
        if self._inline:
            return bytes(raw)
        offset, length, crc = _LOCATION.unpack(raw)
        value = os.pread(self._fd, length, offset)
        if self._verify and crc32c.crc32c(value) != crc:
            raise ValueError(f"CRC mismatch at offset {offset}")
        return value

    def close(self) -> None:
        os.close(self._fd)
        self._env.close()
