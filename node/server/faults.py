"""The test-only I/O fault layer of a node, switched on by ``fault_control``.

NOT for production. Off (the default: ``fault_control`` unset) the engine gets the
plain ``FileSystem`` and nothing in this module runs, so the layer costs nothing. On,
the engine gets a ``FaultyFileSystem`` and a ``FaultControl`` thread follows a small
JSON control file that a test (the chaos suite's nemesis, ``tests/chaos/faults_io.py``)
writes, to inject the disk faults that cannot be caused from outside the process:

``{"fsync_eio": true}``
    every fsync/fdatasync of the engine's files (and of their directories) fails with
    EIO until the file says otherwise. The engine must fail the disk: after a failed
    fsync the page cache cannot be trusted (PostgreSQL's "fsyncgate").
``{"torn_write": {"keep_bytes": N}}``
    the next write to a segment file stores only its first N bytes (at most all but
    one: a torn sector), then the process kills itself with SIGKILL. Recovery must cut
    the torn tail.
``{"power_loss": true}``
    a power cut, now: every later file call blocks, every byte written after its
    file's last fsync is dropped (``FaultyFileSystem.lose_unsynced``), then the process
    kills itself with SIGKILL.
``{"power_loss": "at_sync"}``
    the same power cut, at the moment the next fsync of a segment file starts: the
    writes it was for, appended but not yet durable, are lost with it.

A missing or empty file means no fault. The file is replaced atomically (write a temp
file, rename); the thread looks at its ``stat`` every ``POLL_S`` and reads it only when
it changed. The segment files are the layer's reach: LMDB does its own I/O and is not
covered (see docs/storage.md, "The test-only fault layer").
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import threading
from typing import Any, Final

from cairn.node.storage.fs import Fault, FaultyFileSystem, FileSystem, TornWrite

__all__ = ["POLL_S", "FaultControl", "file_system"]

log = logging.getLogger("cairn.node.faults")

POLL_S: Final = 0.05  # how often the control file's stat is looked at
SEGMENT_PATH_PART: Final = os.sep + "segments" + os.sep  # what a torn write may hit
KNOWN_KEYS: Final = frozenset({"fsync_eio", "torn_write", "power_loss"})


def _die(why: str) -> None:
    """SIGKILL this process, as a crash would: no cleanup, no flush of anything."""
    log.error("fault layer: %s; the process kills itself (SIGKILL)", why)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class FaultControl(threading.Thread):
    """Follows the control file and switches the file system's faults on and off."""

    def __init__(self, path: str, fs: FaultyFileSystem) -> None:
        super().__init__(name="cairn-fault-control", daemon=True)
        self.path = path
        self.fs = fs
        self._stop_event = threading.Event()
        self._seen: tuple[int, int, int] | None = None
        self._fsync_faults: list[Fault] = []
        self._torn_armed = False
        self._loss_armed = False

    def run(self) -> None:
        while not self._stop_event.wait(POLL_S):
            self.poll()

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=5)

    def poll(self) -> None:
        """Apply the control file if it changed since the last look."""
        try:
            st = os.stat(self.path)
            seen: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            seen = None
        except OSError as exc:
            log.error("fault layer: cannot stat %s: %s", self.path, exc)
            return
        if seen == self._seen:
            return
        self._seen = seen
        wanted: dict[str, Any] = {}
        if seen is not None:
            try:
                with open(self.path, encoding="utf-8") as f:
                    text = f.read()
                wanted = json.loads(text) if text.strip() else {}
            except (OSError, ValueError) as exc:
                log.error("fault layer: cannot read %s: %s", self.path, exc)
                return
            if not isinstance(wanted, dict):
                log.error("fault layer: %s is not a JSON object", self.path)
                return
        self.apply(wanted)

    def apply(self, wanted: dict[str, Any]) -> None:
        unknown = sorted(set(wanted) - KNOWN_KEYS)
        if unknown:
            log.error("fault layer: unknown keys %s ignored", unknown)
        loss = wanted.get("power_loss")
        if loss == "at_sync" and not self._loss_armed:
            self.fs.on_call = self._cut_at_sync
            self._loss_armed = True
            log.warning("fault layer: the power goes at the next segment fsync")
        elif loss and loss != "at_sync":
            self._power_loss("now")
            return  # only without SIGKILL (never)
        elif not loss and self._loss_armed:
            self.fs.on_call = None
            self._loss_armed = False
            log.warning("fault layer: power loss disarmed")
        if wanted.get("fsync_eio") and not self._fsync_faults:
            self._fsync_faults = [self.fs.inject(Fault(op, errno.EIO, times=-1))
                                  for op in ("fsync", "fsync_dir")]
            log.warning("fault layer: every fsync now fails with EIO")
        elif not wanted.get("fsync_eio") and self._fsync_faults:
            for fault in self._fsync_faults:
                self.fs.remove(fault)
            self._fsync_faults = []
            log.warning("fault layer: fsyncs succeed again")
        torn = wanted.get("torn_write")
        if isinstance(torn, dict) and not self._torn_armed:
            keep = int(torn.get("keep_bytes", 1))
            self.fs.tear_next_write(TornWrite(
                SEGMENT_PATH_PART, keep,
                then=lambda: _die(f"torn write: {keep} bytes of a segment write stored")))
            self._torn_armed = True
            log.warning("fault layer: the next segment write is torn after %d bytes", keep)
        elif not torn and self._torn_armed:
            self.fs.tear_next_write(None)
            self._torn_armed = False
            log.warning("fault layer: torn write disarmed")


    def _cut_at_sync(self, op: str, path: str) -> None:
        if op == "fsync" and SEGMENT_PATH_PART in path:
            self._power_loss(f"at the fsync of {os.path.basename(path)}")

    def _power_loss(self, when: str) -> None:
        self.fs.halt()
        lost = self.fs.lose_unsynced()
        _die(f"power loss {when}: unsynced bytes of {len(lost)} files dropped "
             f"({[os.path.basename(p) for p in lost]})")


def file_system(fault_control: str | None) -> tuple[FileSystem, FaultControl | None]:
    """The engine's file system: the plain one, or (``fault_control`` set) the test-only
    fault layer with its control thread, the control file applied once already (not
    started: the caller starts and stops it)."""
    if not fault_control:
        return FileSystem(), None
    log.warning(
        "TEST-ONLY I/O FAULT LAYER IS ON (fault_control=%s): this node fails fsyncs, "
        "tears writes and cuts its own power when that file says so. Never use it in "
        "production.", fault_control)
    fs = FaultyFileSystem()
    control = FaultControl(os.path.abspath(fault_control), fs)
    control.poll()
    return fs, control
