"""Disk faults under the engine, through FaultyFileSystem: fsync and write errors, a full
disk, power cuts, torn tails, a dead disk next to a healthy one, faults during compaction.

Each test checks the engine twice: while it runs (what the caller is told) and after a
reopen on a plain file system (what survived). The rule everywhere: an acknowledged write
is never lost, a failed write is never visible, and bytes that fail their checksum are
never served.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cairn.errors import (
    CairnError,
    DiskFull,
    DiskUnavailable,
    IntegrityError,
    NotFound,
)
from cairn.node.storage import Engine, EngineConfig, Fault, FaultyFileSystem, FileSystem
from cairn.node.storage import format as fmt
from cairn.types import Version

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

KiB = 1024
MiB = 1024 * KiB
BUCKET = "bkt"


def config(*disks: Path, **overrides: object) -> EngineConfig:
    settings: dict[str, object] = {
        "min_free_bytes": 0, "segment_max_bytes": MiB, "large_object_bytes": 512 * KiB,
    }
    settings.update(overrides)
    return EngineConfig(disks=tuple(str(d) for d in disks), **settings)  # type: ignore[arg-type]


def value(key: bytes, version: Version, size: int) -> bytes:
    """Distinct, reproducible bytes for every (key, version)."""
    return hashlib.shake_128(key + b"/" + str(version).encode()).digest(size)


@pytest.fixture
def engines() -> Iterator[Callable[..., Engine]]:
    """Open engines; each is closed at teardown (closing twice is harmless)."""
    opened: list[Engine] = []

    def open_engine(*disks: Path, fs: FileSystem | None = None, **overrides: object
                    ) -> Engine:
        for d in disks:
            d.mkdir(exist_ok=True)
        engine = Engine(config(*disks, **overrides), fs=fs).open()
        opened.append(engine)
        return engine

    try:
        yield open_engine
    finally:
        for engine in reversed(opened):
            engine.close()


class Store:
    """What the test expects: key -> (version, bytes, or None for a delete)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.expected: dict[bytes, tuple[Version, bytes | None]] = {}
        self.logical = 0

    def version(self, physical_ms: int = 1) -> Version:
        self.logical += 1
        return Version(physical_ms, self.logical, 1)

    def put(self, key: bytes, size: int, *, partition: int = 0) -> None:
        v = self.version()
        data = value(key, v, size)
        self.engine.put(BUCKET, key, data, version=v, partition=partition)
        self.expected[key] = (v, data)

    def delete(self, key: bytes) -> None:
        v = self.version()
        self.engine.delete(BUCKET, key, version=v)
        self.expected[key] = (v, None)

    def check(self, engine: Engine | None = None) -> None:
        engine = engine or self.engine
        for key, (version, data) in sorted(self.expected.items()):
            if data is None:
                with pytest.raises(NotFound):
                    engine.get(BUCKET, key)
                continue
            assert engine.head(BUCKET, key).version == version, key
            assert engine.get(BUCKET, key).read() == data, key


def assert_absent(engine: Engine, *keys: bytes) -> None:
    for key in keys:
        with pytest.raises(NotFound):
            engine.head(BUCKET, key, include_deleted=True)


def scrub_clean(engine: Engine) -> None:
    damaged = [d for report in engine.scrub() for d in report.damaged]
    assert not damaged, damaged


def segment_files(disk: Path) -> list[str]:
    return sorted(os.listdir(disk / "segments"))


def active_segment(engine: Engine) -> Path:
    disk = engine.disks[0]
    open_logs = [s for s in disk.segment_states()
                 if not s.sealed and s.kind == fmt.SEGMENT_KIND_LOG]
    sid = max(s.segment_id for s in open_logs)
    return Path(disk.path) / "segments" / f"{sid:016x}.seg"


def check_segment_files(engine: Engine) -> None:
    """Right after open: index and segment directory agree; no temp file is left."""
    for disk in engine.disks:
        names = os.listdir(Path(disk.path) / "segments")
        assert not [n for n in names if n.endswith(".tmp")], names
        files = {int(n[:-4], 16) for n in names if n.endswith(".seg")}
        assert files == {s.segment_id for s in disk.segment_states()}, names


class PowerCut:
    """Stops a thread inside an fsync until ``cut()``: unsynced bytes are dropped (the
    power is gone) and the fsync then fails, so the abandoned engine never commits again.

    ``where(op, path, thread_name)`` says which fsync to stop in.
    """

    def __init__(self, fs: FaultyFileSystem, where: Callable[[str, str, str], bool]) -> None:
        self.fs = fs
        self.where = where
        self.armed = False
        self.entered = threading.Event()
        self._release = threading.Event()
        fs.on_call = self._on_call

    def _on_call(self, op: str, path: str) -> None:
        if not self.armed or not self.where(op, path, threading.current_thread().name):
            return
        self.entered.set()
        self._release.wait(30)
        raise OSError(errno.EIO, "power lost", path)

    def cut(self) -> list[str]:
        lost = self.fs.lose_unsynced()
        self._release.set()
        return lost

    def release(self) -> None:
        self._release.set()


def in_committer(op: str, path: str, thread: str) -> bool:
    return op == "fsync" and path.endswith(".seg") and thread.startswith("cairn-commit")


# --------------------------------------------------------------------------- the fault layer


def test_faulty_fs_follows_renames_of_open_files(tmp_path):
    """Write to a temp name, fsync, rename while open, append, fsync: the power cut must
    keep every fsynced byte (this is how the engine creates each segment)."""
    fs = FaultyFileSystem()
    tmp, final = str(tmp_path / "f.tmp"), str(tmp_path / "f")
    fd = fs.open(tmp, os.O_RDWR | os.O_CREAT)
    try:
        fs.write(fd, b"header")
        fs.fsync(fd)
        fs.rename(tmp, final)
        fs.write(fd, b"+record")
        fs.fdatasync(fd)
        fs.write(fd, b"+unsynced")
    finally:
        fs.close(fd)
    fs.lose_unsynced()
    assert Path(final).read_bytes() == b"header+record"


# --------------------------------------------------------------------------- fsync / write


def test_fsync_eio_fails_the_disk_and_every_write_of_the_batch(tmp_path, engines):
    fs = FaultyFileSystem()
    d = tmp_path / "disk"
    engine = engines(d, fs=fs)
    engine.create_bucket(BUCKET)
    store = Store(engine)
    for i in range(10):
        store.put(b"before%d" % i, 3000)
    # Every fsync fails from now on: which one meets the fault first must not matter.
    fs.inject(Fault("fsync", errno.EIO, path_part=".seg", times=-1))
    failed = [b"lost%d" % i for i in range(8)]
    futures = []
    for i, key in enumerate(failed):
        v = Version(2, i, 1)
        # Once the disk failed, a put is refused before anything is written.
        with contextlib.suppress(DiskUnavailable):
            futures.append(engine.submit_put(BUCKET, key, value(key, v, 5000), version=v))
    assert futures
    for future in futures:
        with pytest.raises(DiskUnavailable, match="fsync"):
            future.result(timeout=10)
    status = engine.status()[0]
    assert status.state == "failed"
    assert "fsync" in status.error
    with pytest.raises(DiskUnavailable):
        engine.put(BUCKET, b"later", b"x", version=Version(3, 0, 1))
    engine.close()

    reopened = engines(d)
    assert reopened.disks[0].stats.torn_bytes_cut > 0  # the failed records were cut
    store.check(reopened)
    assert_absent(reopened, *failed, b"later")
    scrub_clean(reopened)
    check_segment_files(reopened)


@pytest.mark.parametrize(
    ("op", "path_part", "skip", "size"),
    [
        ("write", ".seg", 0, 5000),  # the append of a small record
        ("open", ".seg.tmp", 1, 300 * KiB),  # creating the next log segment (rollover)
        ("write", ".seg.tmp", 3, 2 * MiB),  # streaming a large object into its own segment
    ],
    ids=["append", "new-segment", "large-object"],
)
def test_enospc_raises_disk_full_stores_nothing_and_writes_resume(
        tmp_path, engines, op, path_part, skip, size):
    fs = FaultyFileSystem()
    d = tmp_path / "disk"
    engine = engines(d, fs=fs)
    engine.create_bucket(BUCKET)
    store = Store(engine)
    store.put(b"before", 4000)
    fault = fs.inject(Fault(op, errno.ENOSPC, path_part=path_part, skip=skip))
    refused: list[bytes] = []
    with pytest.raises(DiskFull, match="full") as caught:  # noqa: PT012 (loop until full)
        for i in range(20):  # bounded: the fault fires within a few writes
            key = b"full%d" % i
            refused.append(key)
            store.put(key, size)
            refused.pop()
    assert fault.times == 0, "the fault never fired"
    assert "full" in str(caught.value)
    assert engine.status()[0].state == "full"
    assert_absent(engine, *refused)
    store.check()  # reads go on
    assert not [n for n in segment_files(d) if n.endswith(".tmp")]

    # The fault is gone and statvfs shows room (min_free_bytes=0): writes resume.
    store.put(b"after", size)
    assert engine.status()[0].state == "ok"
    store.check()
    engine.close()

    reopened = engines(d)
    store.check(reopened)
    assert_absent(reopened, *refused)
    scrub_clean(reopened)
    check_segment_files(reopened)


# --------------------------------------------------------------------------- power loss


@pytest.mark.parametrize("size", [3000, 200 * KiB], ids=["small", "rolling-segments"])
def test_power_cut_loses_only_unacknowledged_writes(tmp_path, engines, size):
    fs = FaultyFileSystem()
    d = tmp_path / "disk"
    engine = engines(d, fs=fs)
    engine.create_bucket(BUCKET)
    store = Store(engine)
    for i in range(30):
        store.put(b"acked%d" % i, size)
    cut = PowerCut(fs, in_committer)
    try:
        assert fs.lose_unsynced() == [], "acknowledged bytes were not fsynced"
        cut.armed = True
        unacked: list[bytes] = []
        futures = []
        for i in range(20):  # the committer stops inside the fsync of these...
            key = b"unacked%d" % i
            v = Version(2, i, 1)
            futures.append(engine.submit_put(BUCKET, key, value(key, v, size), version=v))
            unacked.append(key)
        assert cut.entered.wait(10), "the commit never reached its fsync"
        for i in range(20, 30):  # ...and these queue up behind it
            key = b"unacked%d" % i
            v = Version(2, i, 1)
            futures.append(engine.submit_put(BUCKET, key, value(key, v, size), version=v))
            unacked.append(key)
        lost = cut.cut()
        assert lost, "the unacknowledged records should have been only in the page cache"
    finally:
        cut.release()
    for future in futures:  # the abandoned engine never acknowledges them
        with pytest.raises(DiskUnavailable):
            future.result(timeout=10)
    engine.close()

    reopened = engines(d)
    store.check(reopened)
    assert_absent(reopened, *unacked)
    scrub_clean(reopened)
    check_segment_files(reopened)
    store.engine = reopened
    store.put(b"after", size)
    reopened.close()
    again = engines(d)
    store.check(again)


def test_power_cut_while_streaming_a_large_object(tmp_path, engines):
    fs = FaultyFileSystem()
    d = tmp_path / "disk"
    engine = engines(d, fs=fs)
    engine.create_bucket(BUCKET)
    store = Store(engine)
    store.put(b"small", 1000)
    cut = PowerCut(fs, lambda op, path, _t: op == "fsync" and path.endswith(".seg.tmp"))
    cut.armed = True
    errors: list[BaseException] = []
    big = value(b"big", Version(2, 0, 1), 3 * MiB)

    def stream() -> None:
        chunks = (big[i : i + 256 * KiB] for i in range(0, len(big), 256 * KiB))
        try:
            engine.put_stream(BUCKET, b"big", chunks, version=Version(2, 0, 1))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=stream)
    thread.start()
    try:
        assert cut.entered.wait(10)
        assert cut.cut()
    finally:
        cut.release()
        thread.join(10)
    assert len(errors) == 1
    assert isinstance(errors[0], DiskUnavailable)
    engine.close()

    reopened = engines(d)
    store.check(reopened)
    assert_absent(reopened, b"big")
    check_segment_files(reopened)


# --------------------------------------------------------------------------- torn tails


@pytest.mark.parametrize("keep", [5, 60, 4000, -1], ids=["header", "names", "value", "crc"])
def test_torn_last_record_is_cut_on_reopen_and_never_served(tmp_path, engines, keep):
    d = tmp_path / "disk"
    engine = engines(d)
    engine.create_bucket(BUCKET)
    store = Store(engine)
    for i in range(20):
        store.put(b"k%d" % i, 3000)
    segment = active_segment(engine)
    engine.close()
    committed = segment.stat().st_size

    # A whole record that was written but never committed, then a torn one after it.
    def record(key: bytes, v: Version) -> bytes:
        data = value(key, v, 8000)
        meta = fmt.encode_meta("raw", fmt.crc32c(data), {})
        return fmt.encode_record(fmt.RECORD_PUT, v, 0, BUCKET.encode(), key, meta, data)

    whole = record(b"uncommitted", Version(5, 1, 1))
    torn = record(b"torn", Version(5, 2, 1))
    with open(segment, "ab") as f:
        f.write(whole + torn[:keep])

    reopened = engines(d)
    assert segment.stat().st_size == committed
    assert reopened.disks[0].stats.torn_bytes_cut == len(whole) + len(torn[:keep])
    assert_absent(reopened, b"uncommitted", b"torn")
    store.check(reopened)
    scrub_clean(reopened)
    # The log goes on where the last commit ended.
    store.engine = reopened
    store.put(b"after", 3000)
    reopened.close()
    again = engines(d)
    store.check(again)
    scrub_clean(again)


def test_lost_bytes_of_an_acknowledged_record_are_never_served(tmp_path, engines):
    """The disk lost the tail of a committed record (a lying disk): reads and scrub must
    report damage; the bytes that remain are never handed out."""
    d = tmp_path / "disk"
    engine = engines(d)
    engine.create_bucket(BUCKET)
    store = Store(engine)
    for i in range(5):
        store.put(b"k%d" % i, 3000)
    store.put(b"last", 50 * KiB)
    segment = active_segment(engine)
    engine.close()
    os.truncate(segment, segment.stat().st_size - 100)

    reopened = engines(d)
    with pytest.raises(IntegrityError):
        reopened.get(BUCKET, b"last").read()
    with pytest.raises(IntegrityError):
        reopened.get(BUCKET, b"last")  # flagged now: refused up front
    damaged = [r.key for report in reopened.scrub() for r in report.damaged]
    assert damaged == [b"last"]
    del store.expected[b"last"]
    store.check(reopened)
    # A newer write of the damaged key replaces it.
    store.engine = reopened
    store.put(b"last", 2000)
    store.check()


# --------------------------------------------------------------------------- two disks


def test_one_failed_disk_leaves_the_other_serving(tmp_path, engines):
    fs = FaultyFileSystem()
    d1, d2 = tmp_path / "disk1", tmp_path / "disk2"
    engine = engines(d1, d2, fs=fs)
    engine.create_bucket(BUCKET)
    store = Store(engine)
    for p in range(32):
        store.put(b"p%02d" % p, 3000, partition=p)
    on_d1 = {k for k in store.expected if engine.disks[0].lookup(fmt.object_key(b"bkt", k))}
    assert on_d1, "no partition prefers disk1"
    assert len(on_d1) < 32, "no partition prefers disk2"

    dead = str(d1) + os.sep
    for op in ("write", "fsync", "read", "open"):
        fs.inject(Fault(op, errno.EIO, path_part=dead, times=-1))
    refused = 0
    for p in range(32):  # new versions of every key, and new keys, in every partition
        for key in (b"p%02d" % p, b"n%02d" % p):
            try:
                store.put(key, 4000, partition=p)
            except DiskUnavailable:
                refused += 1  # the write that found the disk dead; the retry goes to disk2
                store.put(key, 4000, partition=p)
    assert refused <= 1
    states = [s.state for s in engine.status()]
    assert states == ["failed", "ok"], engine.status()
    store.check()  # everything was rewritten after the fault: all of it is on disk2
    listed = [info.key for info in engine.list(BUCKET, limit=1000)]
    assert listed == sorted(store.expected)
    engine.close()

    reopened = engines(d1, d2)
    assert [s.state for s in reopened.status()] == ["ok", "ok"]
    store.check(reopened)
    scrub_clean(reopened)


# --------------------------------------------------------------------------- compaction


@pytest.fixture(scope="module")
def sparse_store(tmp_path_factory) -> tuple[Path, dict[bytes, tuple[Version, bytes | None]]]:
    """A closed disk of 1 MiB segments where most records are dead: 400 keys written,
    300 overwritten, 40 deleted (tombstones purge at once: tombstone_grace_s=0)."""
    d = tmp_path_factory.mktemp("sparse") / "disk"
    d.mkdir()
    import random

    rng = random.Random(5)
    with Engine(config(d, tombstone_grace_s=0.0)) as engine:
        engine.create_bucket(BUCKET)
        store = Store(engine)
        keys = [b"k%03d" % i for i in range(400)]
        for key in keys:
            store.put(key, rng.randint(4 * KiB, 12 * KiB))
        for key in rng.sample(keys, 300):
            store.put(key, rng.randint(4 * KiB, 12 * KiB))
        for key in rng.sample(keys, 40):
            store.delete(key)
        assert any(s.live_bytes < s.total_bytes / 2 for s in engine.disks[0].segment_states()
                   if s.sealed)
    return d, store.expected


COMPACTION_FAULTS = {
    "append-eio-first": Fault("write", errno.EIO, path_part=".seg"),
    "append-eio-later": Fault("write", errno.EIO, path_part=".seg", skip=40),
    "append-enospc": Fault("write", errno.ENOSPC, path_part=".seg", skip=10),
    "commit-fsync-eio": Fault("fsync", errno.EIO, path_part=".seg"),
    "commit-fsync-eio-later": Fault("fsync", errno.EIO, path_part=".seg", skip=3),
    "new-segment-open": Fault("open", errno.EIO, path_part=".seg.tmp"),
    "new-segment-rename": Fault("rename", errno.EIO, path_part=".seg.tmp"),
    "new-segment-dir-fsync": Fault("fsync_dir", errno.EIO, path_part="segments"),
    "drop-unlink": Fault("unlink", errno.EIO, path_part=".seg", times=-1),
}


@pytest.mark.parametrize("name", sorted(COMPACTION_FAULTS))
def test_fault_during_compaction_loses_nothing(tmp_path, engines, sparse_store, name):
    template, expected = sparse_store
    d = tmp_path / "disk"
    shutil.copytree(template, d)
    fs = FaultyFileSystem()
    engine = engines(d, fs=fs, tombstone_grace_s=0.0)
    store = Store(engine)
    store.expected = dict(expected)
    dead_before = engine.status()[0].dead_bytes
    template_fault = COMPACTION_FAULTS[name]
    fault = fs.inject(Fault(template_fault.op, errno=template_fault.errno,
                            skip=template_fault.skip, times=template_fault.times,
                            path_part=template_fault.path_part))
    try:
        reports = engine.compact()
        failed = [e for r in reports for e in r.errors]
    except CairnError as exc:
        failed = [str(exc)]
    assert fault.seen > fault.skip, "the fault point was never reached"
    assert failed, "compaction did not notice the fault"
    if engine.status()[0].state != "failed":
        store.check()  # the engine keeps serving the newest values
    engine.close()

    reopened = engines(d, tombstone_grace_s=0.0)
    check_segment_files(reopened)
    store.check(reopened)
    scrub_clean(reopened)
    # A later compaction (no fault) finishes the job.
    reports = reopened.compact()
    assert not [e for r in reports for e in r.errors], reports
    assert reopened.status()[0].dead_bytes < dead_before
    store.check(reopened)
    reopened.close()
    again = engines(d, tombstone_grace_s=0.0)
    check_segment_files(again)
    store.check(again)


# How many commit fsyncs compaction makes depends on batching (timing); keep the
# chosen one early enough that every run reaches it.
@pytest.mark.parametrize("fsyncs_before", [0, 1, 2])
def test_power_cut_during_compaction_loses_nothing(tmp_path, engines, sparse_store,
                                                   fsyncs_before):
    template, expected = sparse_store
    d = tmp_path / "disk"
    shutil.copytree(template, d)
    fs = FaultyFileSystem()
    engine = engines(d, fs=fs, tombstone_grace_s=0.0)
    store = Store(engine)
    store.expected = dict(expected)
    seen = [0]

    def nth_commit_fsync(op: str, path: str, thread: str) -> bool:
        if not in_committer(op, path, thread):
            return False
        seen[0] += 1
        return seen[0] > fsyncs_before

    cut = PowerCut(fs, nth_commit_fsync)
    cut.armed = True
    outcome: list[object] = []

    def compact() -> None:
        try:
            outcome.append(engine.compact())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=compact)
    thread.start()
    try:
        assert cut.entered.wait(20), "compaction never reached the chosen fsync"
        cut.cut()
    finally:
        cut.release()
        thread.join(20)
    assert outcome, "compaction did not return after the power cut"
    engine.close()

    reopened = engines(d, tombstone_grace_s=0.0)
    check_segment_files(reopened)
    store.check(reopened)
    scrub_clean(reopened)
