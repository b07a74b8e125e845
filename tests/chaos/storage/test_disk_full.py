"""Real full and read-only file systems under the engine: size-limited tmpfs mounts.

Needs root (mount); skipped with the reason otherwise. Every mount is unmounted at
teardown, after the engines on it are closed, also when a test fails.

Segments are append-only, so deleting objects frees nothing until compaction; the
tests fill the disk with a ballast file of their own and free space by removing it.

Read-only: ``mount -o remount,ro`` of a file system with files open for writing is
refused (EBUSY), and the engine always holds its segment and LMDB files open. So the
test bind-mounts the data directory over itself after the engine opened it and
remounts that bind read-only: statvfs and every new open see a read-only file system,
as after an ext4 ``errors=remount-ro``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cairn.errors import CairnError, DiskFull, DiskReadOnly, NotFound
from cairn.node.storage import Engine, EngineConfig
from cairn.node.storage.disk import FREE_CHECK_INTERVAL_S
from cairn.types import Version

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(120)]

KiB = 1024
MiB = 1024 * KiB
BUCKET = "full"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


class Mounts:
    """Mounts made by one test, unmounted in reverse order by ``unmount_all``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.made: list[Path] = []

    def tmpfs(self, name: str, size: str = "24m") -> Path:
        point = self.base / name
        point.mkdir()
        try:
            done = run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                       str(point))
        except FileNotFoundError:
            pytest.skip("no mount command on this machine")
        if done.returncode:
            pytest.skip(f"mounting a tmpfs is not permitted here (needs root): {done.stderr}")
        self.made.append(point)
        return point

    def bind_read_only(self, path: Path) -> None:
        done = run("mount", "--bind", str(path), str(path))
        assert done.returncode == 0, done.stderr
        self.made.append(path)
        done = run("mount", "-o", "remount,ro,bind", str(path))
        assert done.returncode == 0, done.stderr

    def remount_read_write(self, path: Path) -> None:
        done = run("mount", "-o", "remount,rw,bind", str(path))
        assert done.returncode == 0, done.stderr

    def unmount_all(self) -> None:
        problems = []
        for point in reversed(self.made):
            for _attempt in range(20):
                if run("umount", str(point)).returncode == 0:
                    break
                time.sleep(0.25)
            else:
                # Busy: detach it anyway so nothing leaks past the test, and fail loudly.
                run("umount", "-l", str(point))
                problems.append(str(point))
        self.made.clear()
        assert not problems, f"mounts were busy at teardown: {problems}"


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    m = Mounts(tmp_path)
    try:
        yield m
    finally:
        m.unmount_all()


@pytest.fixture
def engines(mounts: Mounts) -> Iterator[Callable[..., Engine]]:
    """Engines on the test's mounts; closed before the mounts are taken down."""
    opened: list[Engine] = []

    def open_engine(*disks: Path, **settings: object) -> Engine:
        for d in disks:
            d.mkdir(exist_ok=True)
        config = EngineConfig(disks=tuple(str(d) for d in disks), segment_max_bytes=MiB,
                              large_object_bytes=512 * KiB, **settings)  # type: ignore[arg-type]
        engine = Engine(config).open()
        opened.append(engine)
        return engine

    try:
        yield open_engine
    finally:
        for engine in reversed(opened):
            engine.close()


def value(key: bytes, version: Version, size: int) -> bytes:
    return hashlib.shake_128(key + b"/" + str(version).encode()).digest(size)


class Store:
    """Puts that were acknowledged, to be read back exactly."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.expected: dict[bytes, tuple[Version, bytes]] = {}
        self.logical = 0

    def put(self, key: bytes, size: int, *, partition: int = 0) -> None:
        self.logical += 1
        v = Version(1, self.logical, 1)
        data = value(key, v, size)
        self.engine.put(BUCKET, key, data, version=v, partition=partition)
        self.expected[key] = (v, data)

    def check(self, engine: Engine | None = None) -> None:
        engine = engine or self.engine
        for key, (version, data) in sorted(self.expected.items()):
            assert engine.head(BUCKET, key).version == version, key
            assert engine.get(BUCKET, key).read() == data, key


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def add_ballast(mount: Path, leave_bytes: int, name: str = "ballast") -> Path:
    """Fill ``mount`` with a file of our own until at most ``leave_bytes`` are free."""
    ballast = mount / name
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        chunk = b"\0" * (256 * KiB)
        while free_bytes(mount) > leave_bytes:
            want = min(len(chunk), free_bytes(mount) - leave_bytes)
            try:
                os.write(fd, chunk[: max(want, 4096)])
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        os.fsync(fd)
    finally:
        os.close(fd)
    return ballast


def fill_until_refused(store: Store, prefix: bytes, size: int, limit: int = 1000
                       ) -> CairnError:
    """Put new objects until the engine refuses one; return the refusal."""
    for i in range(limit):
        try:
            store.put(prefix + b"%05d" % i, size)
        except CairnError as exc:
            return exc
    raise AssertionError(f"{limit} puts of {size} bytes never filled the disk")


@pytest.mark.parametrize("min_free_bytes", [MiB, 0], ids=["reserve-1MiB", "no-reserve"])
def test_full_disk_refuses_writes_serves_reads_and_resumes(mounts, engines, min_free_bytes):
    mount = mounts.tmpfs("full")
    disk = mount / "disk"
    engine = engines(disk, min_free_bytes=min_free_bytes)
    engine.create_bucket(BUCKET)
    store = Store(engine)
    for i in range(20):
        store.put(b"early%02d" % i, 32 * KiB)
    ballast = add_ballast(mount, leave_bytes=3 * MiB)

    refusal = fill_until_refused(store, b"fill", 64 * KiB)
    assert isinstance(refusal, DiskFull), repr(refusal)
    assert "full" in str(refusal), str(refusal)
    assert str(disk) in str(refusal), str(refusal)
    assert engine.status()[0].state == "full"
    with pytest.raises(DiskFull):
        store.put(b"still-full", 64 * KiB)
    refused = [b"still-full"]
    store.check()  # reads go on, head and list too
    assert {o.key for o in engine.list(BUCKET, limit=10_000)} == set(store.expected)
    with pytest.raises(NotFound):
        engine.head(BUCKET, b"still-full")

    ballast.unlink()
    store.put(b"resumed", 64 * KiB)
    assert engine.status()[0].state == "ok"
    store.check()
    engine.close()

    reopened = engines(disk, min_free_bytes=min_free_bytes)
    store.check(reopened)
    for key in refused:
        with pytest.raises(NotFound):
            reopened.head(BUCKET, key, include_deleted=True)
    damaged = [d for report in reopened.scrub() for d in report.damaged]
    assert not damaged, damaged


def test_min_free_bytes_reserve_holds_against_fast_writers(mounts, engines):
    """``min_free_bytes`` promises that a disk with less free space is treated as full.
    Writers must not run the disk into ENOSPC between two free-space checks: the reserve
    is what LMDB commits and compaction live on when the disk fills."""
    mount = mounts.tmpfs("reserve")
    disk = mount / "disk"
    reserve = 4 * MiB
    engine = engines(disk, min_free_bytes=reserve)
    engine.create_bucket(BUCKET)
    store = Store(engine)
    refusal = fill_until_refused(store, b"fill", 64 * KiB)
    assert isinstance(refusal, DiskFull), repr(refusal)
    left = free_bytes(mount)
    assert left >= reserve // 2, (
        f"writes ran the disk down to {left} free bytes through a {reserve} byte reserve "
        f"(refused with: {refusal})"
    )
    store.check()


def test_compaction_frees_a_disk_full_of_dead_records(mounts, engines):
    """Overwrites fill the disk with dead records; compaction must reclaim them so that
    writes resume. A full disk that cannot compact stays full forever."""
    mount = mounts.tmpfs("dead")
    disk = mount / "disk"
    engine = engines(disk, min_free_bytes=MiB)
    engine.create_bucket(BUCKET)
    store = Store(engine)
    refusal = None
    for i in range(2000):  # the same 10 keys over and over
        try:
            store.put(b"k%d" % (i % 10), 64 * KiB)
        except CairnError as exc:
            refusal = exc
            break
    assert isinstance(refusal, DiskFull), repr(refusal)
    dead_before = engine.status()[0].dead_bytes
    assert dead_before > 10 * MiB

    reports = engine.compact()
    after = engine.status()[0]
    assert after.dead_bytes < dead_before / 4, (
        f"compaction reclaimed nothing on the full disk: reports={reports}, {after}"
    )
    store.put(b"after-compaction", 64 * KiB)
    store.check()


def test_read_only_disk_refuses_writes_serves_reads_and_resumes(mounts, engines):
    mount = mounts.tmpfs("ro")
    disk = mount / "disk"
    engine = engines(disk, min_free_bytes=MiB)
    engine.create_bucket(BUCKET)
    store = Store(engine)
    for i in range(20):
        store.put(b"early%02d" % i, 16 * KiB)

    mounts.bind_read_only(disk)
    refusal: CairnError | None = None
    deadline = time.monotonic() + 5 * FREE_CHECK_INTERVAL_S + 2
    i = 0
    while time.monotonic() < deadline:
        # Until the engine's next statvfs, a put may still land through files it holds
        # open; such a put is acknowledged and must stay readable.
        try:
            store.put(b"during%03d" % i, 16 * KiB)
        except CairnError as exc:
            refusal = exc
            break
        i += 1
        time.sleep(0.02)
    assert isinstance(refusal, DiskReadOnly), repr(refusal)
    assert "read-only" in str(refusal), str(refusal)
    assert engine.status()[0].state == "read_only"
    with pytest.raises(DiskReadOnly):
        engine.put_stream(BUCKET, b"big", [b"x" * MiB], version=Version(9, 0, 1))
    store.check()  # reads go on
    assert len(engine.list(BUCKET, limit=10_000)) == len(store.expected)

    mounts.remount_read_write(disk)
    store.put(b"resumed", 16 * KiB)
    assert engine.status()[0].state == "ok"
    store.check()
    engine.close()

    reopened = engines(disk, min_free_bytes=MiB)
    store.check(reopened)


def test_one_full_disk_sends_writes_to_the_other(mounts, engines):
    m1, m2 = mounts.tmpfs("one"), mounts.tmpfs("two")
    d1, d2 = m1 / "disk", m2 / "disk"
    engine = engines(d1, d2, min_free_bytes=2 * MiB)
    engine.create_bucket(BUCKET)
    store = Store(engine)
    for p in range(32):
        store.put(b"p%02d" % p, 32 * KiB, partition=p)
    before = [s.objects for s in engine.status()]
    assert all(before), f"both disks should hold objects: {before}"

    ballast = add_ballast(m1, leave_bytes=0)
    time.sleep(FREE_CHECK_INTERVAL_S + 0.05)  # past the engine's cached free-space check
    for p in range(32):  # new versions of old keys and new keys, in every partition
        store.put(b"p%02d" % p, 32 * KiB, partition=p)
        store.put(b"n%02d" % p, 32 * KiB, partition=p)
    status = engine.status()
    assert [s.state for s in status] == ["full", "ok"], status
    assert status[0].objects <= before[0], status  # nothing new landed on the full disk
    store.check()  # the newest versions, wherever they are
    ballast2 = add_ballast(m2, leave_bytes=0, name="ballast2")
    time.sleep(FREE_CHECK_INTERVAL_S + 0.05)
    with pytest.raises(DiskFull):  # only when no disk can take it
        store.put(b"nowhere", 4 * KiB)
    store.check()
    ballast.unlink()
    ballast2.unlink()
    engine.close()

    reopened = engines(d1, d2, min_free_bytes=2 * MiB)
    store.check(reopened)
