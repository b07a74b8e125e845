"""The test-only I/O fault layer (``cairn.node.server.faults``): off by default, at no
cost; on, it follows its control file. The faults that kill the process (a torn write,
a power loss) are exercised on real node processes in tests/chaos/test_fault_layer_node.py.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from cairn.errors import DiskUnavailable, NotFound
from cairn.node.server import faults
from cairn.node.server.config import load_config
from cairn.node.storage import Engine, EngineConfig, FaultyFileSystem, FileSystem
from cairn.node.storage.fs import Fault, TornWrite
from cairn.types import Version

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

BUCKET = "bkt"


class Abandoned(BaseException):
    """Raised by a torn write's ``then`` in place of the SIGKILL a node does: it passes
    every ``except OSError`` on its way up, so the engine cleans nothing up."""


def control(path: Path, **wanted: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(wanted))
    os.replace(tmp, path)


def open_engine(disk: Path, fs: FileSystem | None = None) -> Engine:
    disk.mkdir(exist_ok=True)
    engine = Engine(EngineConfig(disks=(str(disk),), min_free_bytes=0), fs=fs).open()
    if BUCKET not in engine.list_buckets():
        engine.create_bucket(BUCKET)
    return engine


def test_plain_file_system_when_the_switch_is_off():
    config = load_config([], env={})
    assert config.fault_control is None
    fs, control_thread = faults.file_system(config.fault_control)
    assert type(fs) is FileSystem  # not the fault layer, not a subclass of anything
    assert control_thread is None


def test_switch_from_environment_and_flag(tmp_path):
    path = str(tmp_path / "faults.json")
    assert load_config([], env={"CAIRN_FAULT_CONTROL": path}).fault_control == path
    assert load_config(["--fault-control", path], env={}).fault_control == path
    fs, control_thread = faults.file_system(path)  # a missing file means no fault
    assert isinstance(fs, FaultyFileSystem)
    assert control_thread is not None and not control_thread.is_alive()


def test_fsync_eio_from_the_control_file_fails_the_disk_and_acknowledges_nothing(tmp_path):
    path = tmp_path / "faults.json"
    fs, control_thread = faults.file_system(str(path))
    assert control_thread is not None
    disk = tmp_path / "disk"
    engine = open_engine(disk, fs)
    try:
        engine.put(BUCKET, b"before", b"b" * 3000, version=Version(1, 0, 1))
        control(path, fsync_eio=True)
        control_thread.poll()
        with pytest.raises(DiskUnavailable, match="fsync"):
            engine.put(BUCKET, b"during", b"d" * 3000, version=Version(2, 0, 1))
        assert engine.status()[0].state == "failed"
        control(path)  # cleared: fsyncs work again, but the disk stays failed
        control_thread.poll()
        assert not fs._faults
        with pytest.raises(DiskUnavailable):
            engine.put(BUCKET, b"after", b"a", version=Version(3, 0, 1))
    finally:
        engine.close()
    reopened = open_engine(disk)  # a restart: the unsynced record is cut, never served
    try:
        assert reopened.get(BUCKET, b"before").read() == b"b" * 3000
        for key in (b"during", b"after"):
            with pytest.raises(NotFound):
                reopened.head(BUCKET, key, include_deleted=True)
    finally:
        reopened.close()


def test_a_torn_segment_write_is_cut_at_recovery(tmp_path):
    fs = FaultyFileSystem()
    disk = tmp_path / "disk"
    engine = open_engine(disk, fs)
    engine.put(BUCKET, b"acked", b"a" * 5000, version=Version(1, 0, 1))

    def die() -> None:
        raise Abandoned

    torn = TornWrite(faults.SEGMENT_PATH_PART, keep_bytes=700, then=die)
    fs.tear_next_write(torn)
    with pytest.raises(Abandoned):
        engine.put(BUCKET, b"torn", b"t" * 5000, version=Version(2, 0, 1))
    assert torn.fired
    engine.close()
    reopened = open_engine(disk)
    try:
        assert reopened.disks[0].stats.torn_bytes_cut == 700
        assert reopened.get(BUCKET, b"acked").read() == b"a" * 5000
        with pytest.raises(NotFound):
            reopened.head(BUCKET, b"torn", include_deleted=True)
        assert not [d for r in reopened.scrub() for d in r.damaged]
    finally:
        reopened.close()


def test_power_loss_keeps_what_was_synced_before_the_sync_began(tmp_path):
    """``lose_unsynced`` after a halt: a sync that returns after the power went never
    counts, and bytes appended while a sync ran are not taken as synced by it."""
    fs = FaultyFileSystem()
    name = str(tmp_path / "f")
    fd = fs.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL)
    try:
        fs.write(fd, b"synced")
        fs.fdatasync(fd)
        fs.write(fd, b"+lost")
        fs.halt()
        assert fs.lose_unsynced() == [name]
    finally:
        os.close(fd)
    assert Path(name).read_bytes() == b"synced"


def test_a_file_created_again_under_the_same_name_starts_unsynced(tmp_path):
    """A wiped disk's files come back under their old names: their old synced sizes must
    not protect the new files' unsynced bytes."""
    fs = FaultyFileSystem()
    name = str(tmp_path / "f")
    fd = fs.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL)
    fs.write(fd, b"x" * 100)
    fs.fsync(fd)
    fs.close(fd)
    os.unlink(name)  # behind the file system's back, as an operator's rm -rf
    fd = fs.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL)
    fs.write(fd, b"y" * 50)
    fs.close(fd)
    fs.lose_unsynced()
    assert Path(name).read_bytes() == b""


def test_removed_fault_stops_firing(tmp_path):
    fs = FaultyFileSystem()
    fault = fs.inject(Fault("fsync", errno.EIO, times=-1))
    fd = fs.open(str(tmp_path / "f"), os.O_RDWR | os.O_CREAT)
    try:
        with pytest.raises(OSError, match="injected"):
            fs.fsync(fd)
        fs.remove(fault)
        fs.fsync(fd)
    finally:
        fs.close(fd)
