"""One disk (data directory): its LMDB index, its segment files and its group commit.

The durability ritual (docs/storage.md, STYLE 2.3), for every write:

1. the record is appended to the open segment (``write``), under the append lock, so
   records lie in the file in the order they were queued;
2. the committer thread takes every queued write at once, ``fdatasync``s the segment
   files they touched (one fsync shared by the whole batch: group commit);
3. then it commits one LMDB transaction with their index entries and the segment's new
   ``committed_end`` (LMDB fsyncs on commit). That commit is the moment the writes
   become durable and visible: only then are their futures resolved.

So the index never points past durable bytes, and any byte past ``committed_end`` was
never acknowledged: recovery cuts it off (``_recover_segments``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final

import lmdb

from cairn.errors import (
    CairnError,
    DiskFull,
    DiskReadOnly,
    DiskUnavailable,
    IntegrityError,
    InternalError,
    InvalidArgument,
    ResourceExhausted,
)

from . import format as fmt
from .config import SYNC_ALWAYS, EngineConfig
from .fs import FileSystem

log = logging.getLogger("cairn.storage")

MARKER_NAME: Final = "CAIRN-DISK"
MARKER_MAGIC: Final = "cairn-disk-v1"
INDEX_DIR: Final = "index"
SEGMENT_DIR: Final = "segments"
SEGMENT_SUFFIX: Final = ".seg"
TMP_SUFFIX: Final = ".tmp"
# Free space under which an EIO from LMDB is taken for a short write on a full disk.
SHORT_WRITE_ROOM: Final = 4 * 1024 * 1024
FREE_CHECK_INTERVAL_S: Final = 0.25
# Reads check the identity marker at most this often: after a live wipe or an unmount,
# open files still serve the old disk's index and bytes, which the node no longer has.
IDENTITY_CHECK_INTERVAL_S: Final = 0.01
SCAN_BATCH: Final = 256
MAX_DBS: Final = 8

DB_OBJECTS: Final = b"objects"
DB_PARTITIONS: Final = b"partitions"
DB_SEGMENTS: Final = b"segments"
DB_BUCKETS: Final = b"buckets"
DB_META: Final = b"meta"


class DiskState(StrEnum):
    """What a disk can do now."""

    OK = "ok"
    FULL = "full"  # reads go on; writes fail until space is freed
    READ_ONLY = "read_only"  # reads go on; writes fail
    FAILED = "failed"  # neither; the data must be rebuilt from other replicas


class Outcome(StrEnum):
    APPLIED = "applied"
    STALE = "stale"  # the disk holds a newer (or the same) version; nothing changed
    MOVED = "moved"  # compaction: the record was copied to a new place
    SKIPPED = "skipped"  # compaction: the entry changed meanwhile; the copy is dead
    REMOVED = "removed"  # compaction: a tombstone past its grace period was purged


@dataclass
class _Pending:
    """A write waiting for the group commit."""

    okey: bytes
    entry: fmt.IndexEntry
    future: Future[tuple[Outcome, fmt.IndexEntry | None]]
    move_from: tuple[int, int] | None = None  # compaction: apply only if still here
    remove: bool = False  # compaction: drop the entry (a purged tombstone) if still here
    new_segment: fmt.SegmentState | None = None  # a single-object segment to register


@dataclass
class _Segment:
    """The open log segment appended to by writers."""

    segment_id: int
    fd: int
    end: int
    path: str


@dataclass
class _Delta:
    """How one commit changes a segment's live accounting."""

    live_bytes: int = 0
    live_records: int = 0
    total_bytes: int = 0
    tombstones: int = 0  # change in live tombstones (kept per disk, not per segment)

    def apply(self, st: fmt.SegmentState) -> None:
        st.live_bytes += self.live_bytes
        st.live_records += self.live_records
        st.total_bytes += self.total_bytes


@dataclass
class _ReadHandle:
    fd: int
    refs: int = 0
    doomed: bool = False


@dataclass
class DiskStats:
    segments: int = 0
    live_bytes: int = 0
    dead_bytes: int = 0
    objects: int = 0  # live objects, tombstones not included
    tombstones: int = 0
    integrity_errors: int = 0
    torn_bytes_cut: int = 0
    commits: int = 0
    committed_records: int = 0
    map_resizes: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _SourceError(Exception):
    """Carries an exception raised by a caller's chunk iterator past the disk's OSError
    handling: a ConnectionError from the client is an OSError, but not a disk failure."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _source(chunks: Iterable[bytes]) -> Iterator[bytes]:
    it = iter(chunks)
    while True:
        try:
            chunk = next(it)
        except StopIteration:
            return
        except Exception as exc:
            raise _SourceError(exc) from exc
        yield chunk


class Disk:
    """One data directory. Thread-safe; writes are batched by a committer thread."""

    def __init__(
        self,
        path: str,
        config: EngineConfig,
        fs: FileSystem,
        now_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self.path = os.path.abspath(path)
        self.config = config
        self.fs = fs
        self.now_ms = now_ms
        self.state = DiskState.FAILED
        self.error = "not opened"
        self.disk_id = ""
        self.stats = DiskStats()
        self._env: lmdb.Environment | None = None
        self._initializing = False  # a first open of an empty directory is under way
        self.created = False  # this open made the disk (its directory was empty)
        self._dbs: dict[bytes, lmdb._Database] = {}
        self._seg_dir = os.path.join(self.path, SEGMENT_DIR)
        self._cond = threading.Condition()  # guards the queue, the active segment, states
        self._queue: list[_Pending] = []
        self._active: _Segment | None = None
        self._unsynced: dict[int, _Segment] = {}  # segments written since the last commit
        self._dirty: set[int] = set()  # segments whose state changed outside a commit
        self._segments: dict[int, fmt.SegmentState] = {}
        self._next_segment_id = 1
        self._read_lock = threading.Lock()
        self._read_handles: dict[int, _ReadHandle] = {}
        # Counts open transactions so the map can be resized between them. A plain Lock
        # under the Condition: an RLock costs measurably on every read.
        self._gate = threading.Condition(threading.Lock())
        self._open_txns = 0
        self._resizing = False
        self._committer: threading.Thread | None = None
        self._closing = False
        self._last_free_check = 0.0
        self._written_since_check = 0
        self._marker_identity: tuple[int, int] | None = None  # (st_dev, st_ino) at open
        self._last_identity_check = 0.0
        self.failures = 0  # times this disk entered FAILED (the engine's disk epoch)
        self.was_mount_point = False  # the data directory was a mount point when opened

    # ------------------------------------------------------------------ open / close

    def open(self) -> None:
        """Open (creating if empty) the disk and recover its segments.

        A disk that cannot be opened is left FAILED with ``error`` saying why; it does not
        raise, so the node can go on with its other disks.
        """
        self._initializing = False
        try:
            self._open()
        except (OSError, lmdb.Error, fmt.CorruptRecord, CairnError) as exc:
            self._fail(f"cannot open disk: {exc}")
            if self._initializing:
                self._undo_initialize()

    def _undo_initialize(self) -> None:
        """A first open of an empty directory failed midway (an I/O error, a full disk,
        an operator still deleting): remove what it created, so the directory is empty
        again and the next attempt (``Engine.check_disks``) starts over. Left in place,
        the marker or index without the rest would make the directory look like a
        broken disk, never taken back."""
        if self._env is not None:
            with contextlib.suppress(lmdb.Error):
                self._env.close()
            self._env = None
        for name in (MARKER_NAME + TMP_SUFFIX, MARKER_NAME):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.path, name))
        for name in (INDEX_DIR, SEGMENT_DIR):
            shutil.rmtree(os.path.join(self.path, name), ignore_errors=True)
        log.warning("first open of %s failed (%s); what it created was removed",
                    self.path, self.error)

    def _open(self) -> None:
        if not os.path.isdir(self.path):
            raise DiskUnavailable(f"data directory {self.path} does not exist")
        marker = os.path.join(self.path, MARKER_NAME)
        fresh = not os.path.exists(marker)
        if fresh:
            leftovers = [n for n in os.listdir(self.path) if not n.startswith(".")]
            if leftovers:
                raise DiskUnavailable(
                    f"{self.path} holds files but no {MARKER_NAME} identity marker: "
                    "refusing to use a directory that is not a cairn disk (or whose disk "
                    "is not mounted)"
                )
            self._initializing = True
            self._write_marker(marker)
        with open(marker, encoding="utf-8") as f:
            magic, _, disk_id = f.read().strip().partition(" ")
        if magic != MARKER_MAGIC or not disk_id:
            raise DiskUnavailable(f"{marker} is not a cairn disk marker")
        self.fs.makedirs(self._seg_dir)
        self._open_lmdb()
        with self._read_txn() as txn:
            stored = txn.get(b"disk_id", db=self._dbs[DB_META])
            stored = bytes(stored) if stored is not None else None
        if stored is None:
            with self._write_txn() as txn:
                txn.put(b"disk_id", disk_id.encode(), db=self._dbs[DB_META])
                txn.put(b"format", str(fmt.FORMAT_VERSION).encode(), db=self._dbs[DB_META])
        elif stored.decode() != disk_id:
            raise DiskUnavailable(
                f"{self.path}: index belongs to disk {stored.decode()}, marker says {disk_id}"
            )
        self.disk_id = disk_id
        st = os.stat(marker)
        self._marker_identity = (st.st_dev, st.st_ino)
        self.was_mount_point = os.path.ismount(self.path)
        self._recover_segments()
        self.created, self._initializing = self._initializing, False
        self.state = DiskState.OK
        self.error = ""
        self._refresh_state()
        self._committer = threading.Thread(
            target=self._commit_loop, name=f"cairn-commit-{os.path.basename(self.path)}",
            daemon=True,
        )
        self._committer.start()

    def _write_marker(self, marker: str) -> None:
        tmp = marker + TMP_SUFFIX
        fd = self.fs.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            self.fs.write(fd, f"{MARKER_MAGIC} {uuid.uuid4().hex}\n".encode())
            self.fs.fsync(fd)
        finally:
            self.fs.close(fd)
        self.fs.rename(tmp, marker)
        self.fs.fsync_dir(self.path)

    def _open_lmdb(self) -> None:
        index_dir = os.path.join(self.path, INDEX_DIR)
        self.fs.makedirs(index_dir)
        unsafe = self.config.sync != SYNC_ALWAYS
        # Never writemap: on a full disk it killed the writer with SIGBUS (DESIGN traps).
        self._env = lmdb.open(
            index_dir, map_size=self.config.map_size_bytes, max_dbs=MAX_DBS, writemap=False,
            sync=not unsafe, metasync=not unsafe, readahead=False, max_readers=512,
            lock=True, subdir=True,
        )
        for name in (DB_OBJECTS, DB_PARTITIONS, DB_SEGMENTS, DB_BUCKETS, DB_META):
            self._dbs[name] = self._env.open_db(name)

    def close(self) -> None:
        """Drain queued writes, stop the committer, fsync and close everything."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._committer is not None:
            self._committer.join(timeout=60)
            self._committer = None
        with self._cond:
            for pending in self._queue:
                pending.future.set_exception(DiskUnavailable(f"disk {self.path} closed"))
            self._queue.clear()
            segs = list(self._unsynced.values())
            if self._active is not None and self._active not in segs:
                segs.append(self._active)
            for seg in segs:
                try:
                    if self.state != DiskState.FAILED:
                        self.fs.fdatasync(seg.fd)
                except OSError:
                    log.warning("fsync on close failed for %s", seg.path)
                with contextlib.suppress(OSError):
                    self.fs.close(seg.fd)
            self._unsynced.clear()
            self._active = None
        with self._read_lock:
            for handle in self._read_handles.values():
                with contextlib.suppress(OSError):
                    self.fs.close(handle.fd)
            self._read_handles.clear()
        if self._env is not None:
            self._env.close()
            self._env = None
        if self.state != DiskState.FAILED:
            self.state = DiskState.FAILED
            self.error = "closed"

    # ------------------------------------------------------------------ state

    def _fail(self, why: str) -> None:
        if self.state != DiskState.FAILED:
            log.error("disk %s failed: %s", self.path, why)
            self.failures += 1
        self.state = DiskState.FAILED
        self.error = why

    def _refresh_state(self) -> None:
        """Re-check a FULL or READ_ONLY disk (cheap statvfs, rate-limited)."""
        if self.state == DiskState.FAILED:
            return
        now = time.monotonic()
        if self.state == DiskState.OK and now - self._last_free_check < FREE_CHECK_INTERVAL_S:
            return
        self._last_free_check = now
        self._written_since_check = 0
        if not self._identity_holds():
            return
        try:
            st = self.fs.statvfs(self.path)
        except OSError as exc:
            self._fail(f"statvfs failed: {exc}")
            return
        if st.f_flag & os.ST_RDONLY:
            self.state, self.error = DiskState.READ_ONLY, "the file system is mounted read-only"
        elif st.f_bavail * st.f_frsize < self.config.min_free_bytes:
            self.state = DiskState.FULL
            self.error = (
                f"{st.f_bavail * st.f_frsize} bytes free, below min_free_bytes "
                f"{self.config.min_free_bytes}"
            )
        else:
            self.state, self.error = DiskState.OK, ""

    def _identity_holds(self) -> bool:
        """Fail the disk if its identity marker is gone or is another file: the disk was
        wiped, replaced or unmounted under us, and what the open files still show (or
        anything written now) is not on this disk any more."""
        try:
            st = os.stat(os.path.join(self.path, MARKER_NAME))
            same = (st.st_dev, st.st_ino) == self._marker_identity
        except OSError:
            same = False
        if not same and self._marker_identity is not None:
            self._fail(f"its identity marker {MARKER_NAME} vanished or changed "
                       "(disk wiped, replaced or gone)")
            return False
        return True

    def check_identity(self) -> None:
        """Before a read: the disk is still the one opened (rate-limited), else FAILED."""
        if self.state == DiskState.FAILED:
            return
        now = time.monotonic()
        if now - self._last_identity_check >= IDENTITY_CHECK_INTERVAL_S:
            self._last_identity_check = now
            self._identity_holds()

    def check_readable(self) -> None:
        """Raises: DiskUnavailable if the disk failed."""
        if self.state == DiskState.FAILED:
            raise DiskUnavailable(f"disk {self.path} has failed: {self.error}")

    def check_writable(self, size: int = 0, *, use_reserve: bool = False) -> None:
        """Raises: DiskUnavailable, DiskFull or DiskReadOnly when writes cannot go here.

        ``size`` bytes are about to be written: free space is checked again once the
        bytes written since the last check could have eaten a quarter of the reserve,
        so fast writers cannot run past ``min_free_bytes`` into a real ENOSPC.
        ``use_reserve`` lets compaction write into the reserve (it frees space).
        """
        self._written_since_check += size
        if self.state in (DiskState.FULL, DiskState.READ_ONLY) or (
                self._written_since_check * 4 >= self.config.min_free_bytes):
            self._last_free_check = 0.0
        self._refresh_state()
        if use_reserve and self.state == DiskState.FULL:
            return
        if self.state == DiskState.FAILED:
            raise DiskUnavailable(f"disk {self.path} has failed: {self.error}")
        if self.state == DiskState.FULL:
            raise DiskFull(f"disk {self.path} is full: {self.error}")
        if self.state == DiskState.READ_ONLY:
            raise DiskReadOnly(f"disk {self.path} is read-only")

    @property
    def writable(self) -> bool:
        self._refresh_state()
        return self.state == DiskState.OK

    def _io_error(self, exc: OSError, doing: str) -> CairnError:
        """Classify an OSError from a write path, update the state, return the error."""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            self.state = DiskState.FULL
            self.error = f"no space left while {doing}"
            return DiskFull(f"disk {self.path} is full ({doing})")
        if exc.errno == errno.EROFS:
            self.state, self.error = DiskState.READ_ONLY, "the file system is mounted read-only"
            return DiskReadOnly(f"disk {self.path} is read-only ({doing})")
        self._fail(f"I/O error while {doing}: {exc}")
        return DiskUnavailable(f"disk {self.path} failed: I/O error while {doing}: {exc}")

    # ------------------------------------------------------------------ LMDB access

    @contextlib.contextmanager
    def _txn(self, write: bool = False) -> Iterator[lmdb.Transaction]:
        """A short LMDB transaction, gated so the map can be resized between them.

        Never held across a yield to a caller: LMDB cannot reuse pages that an old read
        transaction still sees, and the file grows (DESIGN traps).
        """
        with self._gate:
            while self._resizing:
                self._gate.wait()
            self._open_txns += 1
        try:
            if self._env is None:
                raise DiskUnavailable(f"disk {self.path} is closed")
            with self._env.begin(write=write, buffers=False) as txn:
                yield txn
        finally:
            with self._gate:
                self._open_txns -= 1
                if self._resizing:
                    self._gate.notify_all()

    def _read_txn(self) -> contextlib.AbstractContextManager[lmdb.Transaction]:
        return self._txn(write=False)

    def _write_txn(self) -> contextlib.AbstractContextManager[lmdb.Transaction]:
        return self._txn(write=True)

    def _grow_map(self) -> None:
        """Double LMDB's map size once no transaction is open in this process."""
        assert self._env is not None
        with self._gate:
            while self._resizing:
                self._gate.wait()
            self._resizing = True
            try:
                while self._open_txns:
                    self._gate.wait()
                new_size = self._env.info()["map_size"] * 2
                self._env.set_mapsize(new_size)
                self.stats.map_resizes += 1
            finally:
                self._resizing = False
                self._gate.notify_all()
        log.info("grew LMDB map of %s to %d bytes", self.path, new_size)

    # ------------------------------------------------------------------ recovery

    def _segment_path(self, segment_id: int, tmp: bool = False) -> str:
        name = f"{segment_id:016x}{SEGMENT_SUFFIX}" + (TMP_SUFFIX if tmp else "")
        return os.path.join(self._seg_dir, name)

    def _recover_segments(self) -> None:
        with self._read_txn() as txn:
            for k, v in txn.cursor(db=self._dbs[DB_SEGMENTS]):
                sid = int.from_bytes(k, "big")
                self._segments[sid] = fmt.decode_segment_state(sid, v)
        on_disk: set[int] = set()
        for name in self.fs.listdir(self._seg_dir):
            path = os.path.join(self._seg_dir, name)
            if name.endswith(TMP_SUFFIX):
                # A large put or a compaction that never committed: never acknowledged.
                self.fs.unlink(path)
                continue
            if not name.endswith(SEGMENT_SUFFIX):
                continue
            sid = int(name[: -len(SEGMENT_SUFFIX)], 16)
            if sid not in self._segments:
                # Renamed into place but its index commit never happened: not acknowledged.
                log.warning("removing uncommitted segment %s", path)
                self.fs.unlink(path)
                continue
            on_disk.add(sid)
        self._next_segment_id = max([0, *self._segments, *on_disk]) + 1
        for sid, st in sorted(self._segments.items()):
            if sid not in on_disk:
                log.error("segment %s is missing; its objects will read as damaged", sid)
                continue
            if not st.sealed:
                self._recover_tail(st)
        self.fs.fsync_dir(self._seg_dir)
        self.stats.tombstones = self._count_tombstones()
        self._recount()

    def _recover_tail(self, st: fmt.SegmentState) -> None:
        """Cut the open segment back to ``committed_end``: nothing past it was acknowledged."""
        path = self._segment_path(st.segment_id)
        fd = self.fs.open(path, os.O_RDWR)
        try:
            size = self.fs.fstat_size(fd)
            if size > st.committed_end:
                valid = self._count_valid_records(fd, st.committed_end, size)
                log.warning(
                    "segment %s: cutting %d bytes past the last commit (%d whole records "
                    "never acknowledged, the rest torn)", path, size - st.committed_end, valid,
                )
                self.fs.ftruncate(fd, st.committed_end)
                self.fs.fsync(fd)
                self.stats.torn_bytes_cut += size - st.committed_end
            elif size < st.committed_end:
                # Truncated behind our back (chaos fault ``truncate``). Appending at the
                # short end would put new records where index entries still point: seal
                # it, so new records go to a new file (the lost ones read as damaged).
                log.error("segment %s is shorter than its committed end: bytes were lost; "
                          "sealed", path)
                st.sealed = True
                self._dirty.add(st.segment_id)
        finally:
            self.fs.close(fd)

    def _count_valid_records(self, fd: int, start: int, end: int) -> int:
        count, pos = 0, start
        while pos < end:
            try:
                head = self.fs.pread(fd, min(end - pos, 1 << 20), pos)
                header = fmt.decode_record_prefix(head)
            except fmt.CorruptRecord:
                break
            if pos + header.record_len > end:
                break
            count += 1
            pos += header.record_len
        return count

    def _recount(self) -> None:
        live = sum(s.live_bytes for s in self._segments.values())
        total = sum(s.total_bytes for s in self._segments.values())
        self.stats.segments = len(self._segments)
        self.stats.live_bytes = live
        self.stats.dead_bytes = total - live
        records = sum(s.live_records for s in self._segments.values())
        self.stats.objects = records - self.stats.tombstones

    def _count_tombstones(self) -> int:
        """Live tombstones in the index (one pass at open; commits keep it current)."""
        count = 0
        with self._read_txn() as txn:
            for raw in txn.cursor(db=self._dbs[DB_OBJECTS]).iternext(keys=False, values=True):
                if len(raw) > 5 and raw[5] & fmt.ENTRY_TOMBSTONE:
                    count += 1
        return count

    # ------------------------------------------------------------------ writes

    def _open_log_segment(self) -> _Segment:
        """Create a new log segment: temp name, header, fsync, rename, fsync the directory."""
        sid = self._next_segment_id
        self._next_segment_id += 1
        tmp, path = self._segment_path(sid, tmp=True), self._segment_path(sid)
        fd = self.fs.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        try:
            self.fs.write(fd, fmt.encode_segment_header(sid, fmt.SEGMENT_KIND_LOG))
            self.fs.fsync(fd)
            self.fs.rename(tmp, path)
            self.fs.fsync_dir(self._seg_dir)
        except OSError:
            self.fs.close(fd)
            raise
        seg = _Segment(sid, fd, fmt.SEGMENT_HEADER_SIZE, path)
        # Registered in LMDB with the first commit that indexes a record in it; until then
        # recovery treats the file as uncommitted and removes it.
        self._segments[sid] = fmt.SegmentState(
            sid, fmt.SEGMENT_KIND_LOG, False, fmt.SEGMENT_HEADER_SIZE, 0, 0, 0
        )
        return seg

    def _writable_segment(self, size: int) -> _Segment:
        """The open log segment, after rolling over to a new one if ``size`` won't fit."""
        active = self._active
        if active is None:
            st = self._open_log_state()
            if st is not None:
                fd = self.fs.open(self._segment_path(st.segment_id), os.O_RDWR)
                end = self.fs.seek_end(fd)
                active = self._active = _Segment(
                    st.segment_id, fd, end, self._segment_path(st.segment_id)
                )
            else:
                active = self._active = self._open_log_segment()
        if active.end > fmt.SEGMENT_HEADER_SIZE and active.end + size > (
            self.config.segment_max_bytes
        ):
            self._segments[active.segment_id].sealed = True
            self._dirty.add(active.segment_id)
            self._unsynced[active.segment_id] = active  # synced and closed by the committer
            active = self._active = self._open_log_segment()
        return active

    def _open_log_state(self) -> fmt.SegmentState | None:
        for st in sorted(self._segments.values(), key=lambda s: -s.segment_id):
            if st.kind == fmt.SEGMENT_KIND_LOG and not st.sealed:
                return st
        return None

    def append(
        self,
        okey: bytes,
        entry: fmt.IndexEntry,
        record: bytes,
        move_from: tuple[int, int] | None = None,
    ) -> Future[tuple[Outcome, fmt.IndexEntry | None]]:
        """Append ``record`` to the log and queue its index entry for the group commit.

        Returns a future resolved once the write is durable (or failed). ``entry``'s
        location fields are filled in here.

        Raises:
            DiskUnavailable: (or DiskFull/DiskReadOnly) when the disk cannot take writes;
                nothing was written.
        """
        future: Future[tuple[Outcome, fmt.IndexEntry | None]] = Future()
        with self._cond:
            # Compaction (move_from) may write into the free-space reserve: it frees
            # more than it writes, and a full disk must be able to reclaim dead space.
            self.check_writable(len(record), use_reserve=move_from is not None)
            try:
                seg = self._writable_segment(len(record))
            except OSError as exc:
                raise self._io_error(exc, "creating a segment") from exc
            offset = seg.end
            try:
                self.fs.write(seg.fd, record)
            except OSError as exc:
                err = self._io_error(exc, "appending a record")
                self._cut_partial_append(seg, offset)
                raise err from exc
            seg.end += len(record)
            self._unsynced[seg.segment_id] = seg
            # Positional, not dataclasses.replace: this runs once per write, on the loop.
            entry = fmt.IndexEntry(entry.version, entry.flags, entry.partition,
                                   entry.checksum, seg.segment_id, offset, len(record),
                                   entry.value_len, entry.block_size, entry.stored_ms,
                                   entry.meta, entry.inline)
            self._queue.append(_Pending(okey, entry, future, move_from))
            self._cond.notify_all()
        return future

    def remove_entry(self, okey: bytes, entry: fmt.IndexEntry
                     ) -> Future[tuple[Outcome, fmt.IndexEntry | None]]:
        """Queue the removal of ``okey``'s entry if it still is ``entry`` (tombstone purge).

        Raises:
            DiskUnavailable: the disk cannot take writes.
        """
        future: Future[tuple[Outcome, fmt.IndexEntry | None]] = Future()
        with self._cond:
            self.check_writable(use_reserve=True)
            self._queue.append(_Pending(okey, entry, future, (entry.segment_id, entry.offset),
                                        remove=True))
            self._cond.notify_all()
        return future

    def segment_state(self, segment_id: int) -> fmt.SegmentState | None:
        with self._cond:
            st = self._segments.get(segment_id)
            return replace(st) if st is not None else None

    def _cut_partial_append(self, seg: _Segment, offset: int) -> None:
        """A failed append may have written part of a record: cut it so it is never read."""
        try:
            self.fs.ftruncate(seg.fd, offset)
            os.lseek(seg.fd, offset, os.SEEK_SET)
        except OSError as exc:
            self._fail(f"could not cut a failed append: {exc}")

    def write_single(
        self,
        okey: bytes,
        entry: fmt.IndexEntry,
        prefix: bytes,
        header_crc_of: Callable[[int], tuple[bytes, int]],
        chunks: Iterable[bytes],
        expect_size: int | None,
    ) -> tuple[Future[tuple[Outcome, fmt.IndexEntry | None]], int, int]:
        """Stream a large value into a segment of its own, then queue its index entry.

        ``prefix`` is a placeholder record prefix of the right length; once the value's
        length is known ``header_crc_of(value_len)`` gives the real prefix and header CRC.
        The file is written under a temp name, fsynced, renamed and the directory fsynced
        before the index commit is queued.

        Returns (future, value_len, value_crc).

        Raises:
            DiskUnavailable: the disk cannot take the write; nothing was stored.
            InvalidArgument: (from ``chunks``) the caller's stream was bad; nothing stored.
        """
        self.check_writable(expect_size or 0)
        with self._cond:
            sid = self._next_segment_id
            self._next_segment_id += 1
        tmp, path = self._segment_path(sid, tmp=True), self._segment_path(sid)
        block_size = entry.block_size
        try:
            fd = self.fs.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        except OSError as exc:
            raise self._io_error(exc, "creating a segment") from exc
        done = False
        try:
            header = fmt.encode_segment_header(sid, fmt.SEGMENT_KIND_SINGLE)
            start = len(header)
            self.fs.write(fd, header + prefix)
            value_len, value_crc, block_crcs = 0, 0, []
            block_crc, block_fill = 0, 0
            for chunk in _source(chunks):
                if not chunk:
                    continue
                self.fs.write(fd, chunk)
                value_len += len(chunk)
                value_crc = fmt.crc32c(chunk, value_crc)
                view = memoryview(chunk)
                while view:
                    take = min(len(view), block_size - block_fill)
                    block_crc = fmt.crc32c(view[:take], block_crc)
                    block_fill += take
                    view = view[take:]
                    if block_fill == block_size:
                        block_crcs.append(block_crc)
                        block_crc, block_fill = 0, 0
                if value_len > self.config.max_value_bytes:
                    raise ResourceExhausted(
                        f"object is larger than max_value_bytes {self.config.max_value_bytes}"
                    )
            if block_fill:
                block_crcs.append(block_crc)
            if expect_size is not None and value_len != expect_size:
                raise InvalidArgument(
                    f"stream carried {value_len} bytes but the header announced {expect_size}"
                )
            real_prefix, header_crc = header_crc_of(value_len)
            assert len(real_prefix) == len(prefix)
            self.fs.write(fd, fmt.encode_trailer(header_crc, block_crcs))
            self.fs.pwrite(fd, real_prefix, start)
            size = self.fs.fstat_size(fd)
            if self.config.sync == SYNC_ALWAYS:
                self.fs.fsync(fd)
            self.fs.close(fd)
            fd = -1
            self.fs.rename(tmp, path)
            if self.config.sync == SYNC_ALWAYS:
                self.fs.fsync_dir(self._seg_dir)
            done = True
        except _SourceError as exc:
            raise exc.error from exc.error.__cause__  # the caller's stream failed, not the disk
        except OSError as exc:
            raise self._io_error(exc, "writing a large object") from exc
        finally:
            if fd >= 0:
                self.fs.close(fd)
            if not done:
                with contextlib.suppress(OSError):
                    self.fs.unlink(tmp)
        entry = replace(
            entry, segment_id=sid, offset=start, record_len=size - start, value_len=value_len,
            checksum=value_crc,
        )
        state = fmt.SegmentState(sid, fmt.SEGMENT_KIND_SINGLE, True, size, 0, 0, 0)
        future: Future[tuple[Outcome, fmt.IndexEntry | None]] = Future()
        with self._cond:
            if self.state == DiskState.FAILED:
                raise DiskUnavailable(f"disk {self.path} has failed: {self.error}")
            self._queue.append(_Pending(okey, entry, future, new_segment=state))
            self._cond.notify_all()
        return future, value_len, value_crc

    # ------------------------------------------------------------------ group commit

    def _commit_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                batch = self._queue[: self.config.max_batch_records]
                del self._queue[: len(batch)]
                # Every byte appended so far is covered by this round's fdatasync, also
                # the bytes of writes left in the queue by max_batch_records.
                to_sync = list(self._unsynced.values())
                self._unsynced = {}
                dirty, self._dirty = self._dirty, set()
            try:
                self._commit(batch, to_sync, dirty)
            except BaseException as exc:  # resolve every waiter, whatever went wrong
                with self._cond:
                    self._dirty |= dirty
                self._abort_batch(batch, to_sync, exc)

    def _commit(self, batch: list[_Pending], to_sync: list[_Segment], dirty: set[int]) -> None:
        if self.state == DiskState.FAILED:
            raise DiskUnavailable(f"disk {self.path} has failed: {self.error}")
        if self.config.sync == SYNC_ALWAYS:
            for seg in to_sync:
                try:
                    self.fs.fdatasync(seg.fd)
                except OSError as exc:
                    # After a failed fsync the page cache cannot be trusted (fsyncgate).
                    self._fail(f"fsync of {seg.path} failed: {exc}")
                    raise DiskUnavailable(f"disk {self.path} failed: fsync error {exc}") from exc
        results = self._index_batch(batch, dirty)
        with self._cond:
            for seg in to_sync:
                st = self._segments.get(seg.segment_id)
                # A sealed segment is closed after its last sync; if it was sealed during
                # this commit it is queued for the next one, which closes it then.
                if (seg is not self._active and (st is None or st.sealed)
                        and seg.segment_id not in self._unsynced):
                    self.fs.close(seg.fd)
        self.stats.commits += 1
        self.stats.committed_records += len(batch)
        for pending, result in zip(batch, results, strict=True):
            pending.future.set_result(result)

    def _index_batch(self, batch: list[_Pending], dirty: set[int]
                     ) -> list[tuple[Outcome, fmt.IndexEntry | None]]:
        """One LMDB transaction for the whole batch; segment bookkeeping changes only
        after it committed (appenders keep appending meanwhile: no lock is held)."""
        while True:
            deltas: dict[int, _Delta] = {}
            try:
                with self._txn(write=True) as txn:
                    results = [self._apply(txn, p, deltas) for p in batch]
                    with self._cond:
                        states = self._states_after(batch, deltas, dirty)
                    for sid, st in states.items():
                        txn.put(fmt.segment_key(sid), fmt.encode_segment_state(st),
                                db=self._dbs[DB_SEGMENTS])
                break
            except lmdb.MapFullError:
                self._grow_map()
            except lmdb.Error as exc:
                raise self._lmdb_error(exc, "committing the index") from exc
        with self._cond:
            for p in batch:
                if p.new_segment is not None:
                    self._segments[p.new_segment.segment_id] = p.new_segment
            for sid, delta in deltas.items():
                self.stats.tombstones += delta.tombstones
                changed = self._segments.get(sid)
                if changed is not None:
                    delta.apply(changed)
            for p in batch:
                if p.new_segment is None and not p.remove:
                    st = self._segments[p.entry.segment_id]
                    st.committed_end = max(st.committed_end, p.entry.offset + p.entry.record_len)
            self._recount()
        return results

    def _states_after(self, batch: list[_Pending], deltas: dict[int, _Delta], dirty: set[int]
                      ) -> dict[int, fmt.SegmentState]:
        """The segment states this commit writes: current ones plus this batch's changes."""
        states: dict[int, fmt.SegmentState] = {}
        for p in batch:
            if p.new_segment is not None:
                states[p.new_segment.segment_id] = replace(p.new_segment)
        for sid in set(deltas) | dirty | {p.entry.segment_id for p in batch}:
            if sid not in states and sid in self._segments:
                states[sid] = replace(self._segments[sid])
        for sid, delta in deltas.items():
            if sid in states:
                delta.apply(states[sid])
        for p in batch:
            if p.new_segment is None and not p.remove:
                st = states[p.entry.segment_id]
                st.committed_end = max(st.committed_end, p.entry.offset + p.entry.record_len)
        return states

    def _lmdb_error(self, exc: lmdb.Error, doing: str) -> CairnError:
        text = str(exc)
        if "No space left" in text or "MDB_MAP_FULL" in text:
            return self._io_error(OSError(errno.ENOSPC, text), doing)
        if "Read-only" in text:
            return self._io_error(OSError(errno.EROFS, text), doing)
        if "Input/output error" in text and self._out_of_space():
            # LMDB reports a short write as EIO: on a file system with no room left
            # that is ENOSPC, and the aborted commit left the index as it was (found by
            # the chaos suite's ``enospc``: the disk failed instead of filling up).
            return self._io_error(OSError(errno.ENOSPC, text), doing)
        return self._io_error(OSError(errno.EIO, text), doing)

    def _out_of_space(self) -> bool:
        try:
            st = self.fs.statvfs(self.path)
        except OSError:
            return False
        return st.f_bavail * st.f_frsize < max(self.config.min_free_bytes, SHORT_WRITE_ROOM)

    def _apply(self, txn: lmdb.Transaction, p: _Pending, deltas: dict[int, _Delta]
               ) -> tuple[Outcome, fmt.IndexEntry | None]:
        """Apply one write inside the commit transaction: newest version wins."""
        objects = self._dbs[DB_OBJECTS]
        new = p.entry
        if not p.remove:
            deltas.setdefault(new.segment_id, _Delta()).total_bytes += new.record_len
        raw = txn.get(p.okey, db=objects)
        old: fmt.IndexEntry | None = None
        if raw is not None:
            try:
                old = fmt.decode_index_entry(raw)
            except fmt.CorruptRecord:
                self.stats.integrity_errors += 1
                log.error("index entry of %r is corrupt; replacing it", p.okey)
        if p.move_from is not None:
            if old is None or (old.segment_id, old.offset) != p.move_from:
                return Outcome.SKIPPED, old
            if p.remove:
                gone = deltas.setdefault(old.segment_id, _Delta())
                gone.live_bytes -= old.record_len
                gone.live_records -= 1
                gone.tombstones -= int(old.tombstone)
                txn.delete(p.okey, db=objects)
                txn.delete(fmt.partition_key(old.partition, p.okey), db=self._dbs[DB_PARTITIONS])
                return Outcome.REMOVED, None
            new = replace(new, flags=old.flags, stored_ms=old.stored_ms, inline=old.inline)
        elif old is not None and (
            old.version > new.version or (old.version == new.version and not old.damaged)
        ):
            return Outcome.STALE, old
        if old is not None:
            gone = deltas.setdefault(old.segment_id, _Delta())
            gone.live_bytes -= old.record_len
            gone.live_records -= 1
            gone.tombstones -= int(old.tombstone)
        added = deltas[new.segment_id]
        added.live_bytes += new.record_len
        added.live_records += 1
        added.tombstones += int(new.tombstone)
        txn.put(p.okey, fmt.encode_index_entry(new), db=objects)
        if old is None or old.partition != new.partition:
            if old is not None:
                txn.delete(fmt.partition_key(old.partition, p.okey), db=self._dbs[DB_PARTITIONS])
            txn.put(fmt.partition_key(new.partition, p.okey), b"", db=self._dbs[DB_PARTITIONS])
        return (Outcome.MOVED if p.move_from is not None else Outcome.APPLIED), new

    def _abort_batch(self, batch: list[_Pending], to_sync: list[_Segment], exc: BaseException
                     ) -> None:
        """A batch failed before its commit: cut the log back and fail every queued write.

        Records appended after the batch was taken lie past it in the file, so they are cut
        too and their writers fail as well: a failed write never becomes visible.
        """
        error = exc if isinstance(exc, CairnError) else InternalError(f"commit failed: {exc}")
        if not isinstance(exc, CairnError):
            log.exception("group commit failed", exc_info=exc)
        with self._cond:
            victims = batch + self._queue
            self._queue = []
            if self.state != DiskState.FAILED:
                for seg in {id(s): s for s in [self._active, *to_sync,
                                               *self._unsynced.values()] if s}.values():
                    st = self._segments.get(seg.segment_id)
                    if st is None or seg.end <= st.committed_end:
                        continue
                    try:
                        self.fs.ftruncate(seg.fd, st.committed_end)
                        os.lseek(seg.fd, st.committed_end, os.SEEK_SET)
                        seg.end = st.committed_end
                    except OSError as err:
                        self._fail(f"could not cut uncommitted records: {err}")
            for p in batch:
                if p.new_segment is not None:
                    with contextlib.suppress(OSError):
                        self.fs.unlink(self._segment_path(p.new_segment.segment_id))
        for p in victims:
            if not p.future.done():
                p.future.set_exception(error)

    # ------------------------------------------------------------------ reads

    def lookup(self, okey: bytes) -> fmt.IndexEntry | None:
        """The index entry of ``okey`` on this disk, or None.

        Raises:
            DiskUnavailable: the disk failed.
            IntegrityError: the index entry itself is corrupt.
        """
        self.check_readable()
        with self._read_txn() as txn:
            raw = txn.get(okey, db=self._dbs[DB_OBJECTS])
        if raw is None:
            return None
        try:
            return fmt.decode_index_entry(raw)
        except fmt.CorruptRecord as exc:
            self.stats.integrity_errors += 1
            raise IntegrityError(f"index entry on {self.path} is corrupt: {exc}") from exc

    def scan(self, start: bytes, stop_prefix: bytes, after: bool = False
             ) -> Iterator[tuple[bytes, fmt.IndexEntry | None]]:
        """Index entries with keys >= start (> start if ``after``) that begin with
        ``stop_prefix``, in key order. A fresh short read transaction per batch; corrupt
        entries are yielded as None."""
        self.check_readable()
        position, exclusive = start, after
        while True:
            batch: list[tuple[bytes, bytes]] = []
            with self._read_txn() as txn:
                cur = txn.cursor(db=self._dbs[DB_OBJECTS])
                if not cur.set_range(position):
                    return
                if exclusive and cur.key() == position and not cur.next():
                    return
                for k, v in cur:
                    k, v = bytes(k), bytes(v)
                    if not k.startswith(stop_prefix):
                        break
                    batch.append((k, v))
                    if len(batch) >= SCAN_BATCH:
                        break
            for k, v in batch:
                try:
                    yield k, fmt.decode_index_entry(v)
                except fmt.CorruptRecord:
                    self.stats.integrity_errors += 1
                    yield k, None
            if len(batch) < SCAN_BATCH:
                return
            position, exclusive = batch[-1][0], True

    def partition_keys(self, partition: int) -> Iterator[bytes]:
        """Object keys of one partition on this disk, in key order (batched reads)."""
        prefix = fmt.partition_key(partition, b"")
        position, exclusive = prefix, False
        while True:
            batch: list[bytes] = []
            with self._read_txn() as txn:
                cur = txn.cursor(db=self._dbs[DB_PARTITIONS])
                if not cur.set_range(position):
                    return
                if exclusive and cur.key() == position and not cur.next():
                    return
                for raw in cur.iternext(keys=True, values=False):
                    k = bytes(raw)
                    if not k.startswith(prefix):
                        break
                    batch.append(k)
                    if len(batch) >= SCAN_BATCH:
                        break
            for k in batch:
                yield k[len(prefix):]
            if len(batch) < SCAN_BATCH:
                return
            position, exclusive = batch[-1], True

    def acquire_segment(self, segment_id: int) -> int:
        """A read fd for a segment, reference counted; pair with ``release_segment``.

        Raises:
            FileNotFoundError: the segment file is gone.
        """
        with self._read_lock:
            handle = self._read_handles.get(segment_id)
            if handle is not None and handle.doomed:
                raise FileNotFoundError(errno.ENOENT, "segment was compacted away")
            if handle is None:
                fd = self.fs.open(self._segment_path(segment_id), os.O_RDONLY)
                handle = self._read_handles[segment_id] = _ReadHandle(fd)
            handle.refs += 1
            return handle.fd

    def segment_file_lost(self, segment_id: int, fd: int) -> bool:
        """True if the file behind ``fd`` (a reference from ``acquire_segment``) is no
        longer the segment's file on disk: deleted (or replaced) under the node. A cached
        descriptor still reads the deleted file, so without this check a scrub would
        pass records that are gone from the disk (and from the next start).

        The segment is then retired for this process: readers open it afresh (and find
        it missing), and if it is the open log segment it is sealed, so new records go
        to a new file rather than into a deleted one.
        """
        try:
            st = os.stat(self._segment_path(segment_id))
            held = os.fstat(fd)
            if (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino):
                return False
        except FileNotFoundError:
            pass
        except OSError:
            return False  # cannot tell (the disk may be failing): not proof of loss
        log.error("segment %s of %s is missing from the disk; its records are damaged",
                  segment_id, self.path)
        with self._read_lock:
            handle = self._read_handles.get(segment_id)
            if handle is not None and not handle.doomed:
                handle.doomed = True
                # No new reference can be taken; the last release closes the fd.
        with self._cond:
            active = self._active
            if active is not None and active.segment_id == segment_id:
                self._segments[segment_id].sealed = True
                self._dirty.add(segment_id)
                self._unsynced[segment_id] = active  # synced and closed by the committer
                self._active = None
        return True

    def release_segment(self, segment_id: int, fd: int) -> None:
        with self._read_lock:
            handle = self._read_handles.get(segment_id)
            assert handle is not None
            assert handle.fd == fd
            handle.refs -= 1
            if handle.doomed and handle.refs == 0:
                del self._read_handles[segment_id]
                self.fs.close(fd)

    def mark_damaged(self, okey: bytes, entry: fmt.IndexEntry) -> None:
        """Flag an entry whose bytes failed their checksum, if the index still points there.

        A damaged entry is never served; a repair may replace it with the same version.
        """
        self.stats.integrity_errors += 1
        if self.state == DiskState.FAILED or self._env is None:
            return
        try:
            with self._write_txn() as txn:
                raw = txn.get(okey, db=self._dbs[DB_OBJECTS])
                if raw is None:
                    return
                try:
                    cur = fmt.decode_index_entry(raw)
                except fmt.CorruptRecord:
                    return
                if (cur.segment_id, cur.offset, cur.version) != (
                    entry.segment_id, entry.offset, entry.version,
                ):
                    return
                damaged = replace(cur, flags=cur.flags | fmt.ENTRY_DAMAGED)
                txn.put(okey, fmt.encode_index_entry(damaged), db=self._dbs[DB_OBJECTS])
        except lmdb.Error as exc:
            log.warning("could not flag %r as damaged: %s", okey, exc)

    # ------------------------------------------------------------------ buckets

    def put_bucket(self, name: bytes, info: bytes | None) -> None:
        """Create (info) or remove (None) a bucket record, synchronously and durably.

        Raises:
            DiskUnavailable: the disk cannot take writes.
        """
        self._put_record(DB_BUCKETS, name, info, "writing a bucket")

    def meta(self, name: bytes) -> bytes | None:
        """A value of this disk's own metadata (``put_meta``), or None."""
        self.check_readable()
        with self._read_txn() as txn:
            raw = txn.get(name, db=self._dbs[DB_META])
            return bytes(raw) if raw is not None else None

    def put_meta(self, name: bytes, value: bytes | None) -> None:
        """Set (or, with None, remove) a value of this disk's metadata, durably.

        Raises:
            DiskUnavailable: the disk cannot take writes.
        """
        self._put_record(DB_META, name, value, "writing disk metadata")

    def _put_record(self, db: bytes, name: bytes, value: bytes | None, doing: str) -> None:
        """Put (or, with None, delete) one record of ``db`` in a transaction of its own."""
        self.check_writable()
        while True:
            try:
                with self._write_txn() as txn:
                    if value is None:
                        txn.delete(name, db=self._dbs[db])
                    else:
                        txn.put(name, value, db=self._dbs[db])
                return
            except lmdb.MapFullError:
                self._grow_map()
            except lmdb.Error as exc:
                raise self._lmdb_error(exc, doing) from exc

    def buckets(self) -> dict[bytes, bytes]:
        self.check_readable()
        with self._read_txn() as txn:
            return {bytes(k): bytes(v) for k, v in txn.cursor(db=self._dbs[DB_BUCKETS])}

    def segment_states(self) -> list[fmt.SegmentState]:
        with self._cond:
            return [replace(s) for s in self._segments.values()]

    def drop_segment(self, segment_id: int) -> bool:
        """Forget a sealed segment with no live records and delete its file (compaction).

        Lock order is the committer's: an LMDB write transaction is never opened while
        ``_cond`` is held (that deadlocked against a commit, found by the crash tests).
        Returns True if the segment was dropped.
        """
        with self._cond:
            st = self._segments.get(segment_id)
            if st is None or st.live_records or not st.sealed:
                return False
            if self._active is not None and self._active.segment_id == segment_id:
                return False
            if segment_id in self._unsynced:
                return False
            # No entry points here any more and nothing can be appended to a sealed
            # segment, so no commit will touch its state again.
            del self._segments[segment_id]
        try:
            while True:
                try:
                    with self._write_txn() as txn:
                        txn.delete(fmt.segment_key(segment_id), db=self._dbs[DB_SEGMENTS])
                    break
                except lmdb.MapFullError:
                    self._grow_map()
        except BaseException:
            with self._cond:
                self._segments[segment_id] = st
            raise
        with self._cond:
            self._recount()
        with self._read_lock:
            handle = self._read_handles.get(segment_id)
            if handle is not None:
                handle.doomed = True
                if handle.refs == 0:
                    del self._read_handles[segment_id]
                    self.fs.close(handle.fd)
        with contextlib.suppress(FileNotFoundError):
            self.fs.unlink(self._segment_path(segment_id))
        return True
