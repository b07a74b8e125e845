"""The engine's only door to the file system, so tests can fail it on purpose.

``FileSystem`` is a thin veneer over ``os``: it costs one attribute lookup per call.
``FaultyFileSystem`` wraps it for tests and the chaos suite (STYLE 2.6): it fails the
Nth call of a named operation with a chosen errno, tears a write (only a prefix of its
bytes reaches the file), and it remembers how much of each file was made durable so
``lose_unsynced()`` can act out a power cut (every byte appended after the file's last
fsync vanishes). A node uses it only when its test-only ``fault_control`` setting is on
(``cairn.node.server.faults``); otherwise the engine gets the plain ``FileSystem``.
"""

from __future__ import annotations

import errno as _errno
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Fault", "FaultyFileSystem", "FileSystem", "TornWrite"]


class FileSystem:
    """Plain POSIX file I/O on file descriptors."""

    def open(self, path: str, flags: int, mode: int = 0o644) -> int:
        return os.open(path, flags | os.O_CLOEXEC, mode)

    def close(self, fd: int) -> None:
        os.close(fd)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        """Write all of ``data`` at the file position (loops over short writes)."""
        view = memoryview(data)
        total = 0
        while total < len(view):
            total += os.write(fd, view[total:])
        return total

    def pwrite(self, fd: int, data: bytes, offset: int) -> None:
        view = memoryview(data)
        done = 0
        while done < len(view):
            done += os.pwrite(fd, view[done:], offset + done)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        return os.pread(fd, size, offset)

    def fdatasync(self, fd: int) -> None:
        os.fdatasync(fd)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def ftruncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def fstat_size(self, fd: int) -> int:
        return os.fstat(fd).st_size

    def seek_end(self, fd: int) -> int:
        return os.lseek(fd, 0, os.SEEK_END)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def fsync_dir(self, path: str) -> None:
        """Make a rename or a new file in ``path`` durable."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def statvfs(self, path: str) -> os.statvfs_result:
        return os.statvfs(path)


@dataclass
class Fault:
    """Fail calls of ``op`` (optionally only on paths containing ``path_part``).

    The first ``skip`` matching calls pass; then ``times`` calls fail with ``errno``
    (``times=-1``: forever).
    """

    op: str
    errno: int = _errno.EIO
    skip: int = 0
    times: int = 1
    path_part: str = ""
    seen: int = field(default=0, init=False)


@dataclass
class TornWrite:
    """Tear the next write (``write`` or ``pwrite``) to a path containing ``path_part``:
    only its first ``keep_bytes`` bytes reach the file (at most all but one), then
    ``then()`` runs (a node kills itself there: a power cut in mid-sector). If ``then``
    returns, the write fails with EIO. It fires once; ``fired`` says whether it did.
    """

    path_part: str
    keep_bytes: int
    then: Callable[[], None] | None = None
    fired: bool = field(default=False, init=False)


class FaultyFileSystem(FileSystem):
    """A FileSystem that fails chosen calls and can forget unsynced appends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._paths: dict[int, str] = {}
        self._synced: dict[str, int] = {}  # path -> bytes known durable
        self._inodes: dict[str, int] = {}  # path -> the inode those bytes belong to
        self._torn: TornWrite | None = None
        self._halted = False
        self.on_call: Callable[[str, str], None] | None = None

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        """Stop injecting ``fault`` (a no-op if it is not injected)."""
        with self._lock:
            self._faults = [f for f in self._faults if f is not fault]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._torn = None

    def tear_next_write(self, torn: TornWrite | None) -> None:
        """Arm (or, with None, disarm) a torn write."""
        with self._lock:
            self._torn = torn

    def halt(self) -> None:
        """From now on every call blocks for good: the process is about to die (a power
        cut), and nothing it does after this instant may reach the disk or be
        acknowledged. Only for a process that kills itself right after."""
        with self._lock:
            self._halted = True

    @staticmethod
    def _park() -> None:
        threading.Event().wait()  # until the process dies

    def _check(self, op: str, path: str) -> None:
        if self._halted:
            self._park()
        if self.on_call is not None:
            self.on_call(op, path)
        with self._lock:
            for fault in self._faults:
                if fault.op != op or fault.path_part not in path:
                    continue
                fault.seen += 1
                if fault.seen <= fault.skip:
                    continue
                if fault.times == 0:
                    continue
                if fault.times > 0:
                    fault.times -= 1
                raise OSError(fault.errno, f"injected {os.strerror(fault.errno)} on {op}", path)

    def open(self, path: str, flags: int, mode: int = 0o644) -> int:
        self._check("open", path)
        fd = super().open(path, flags, mode)
        st = os.fstat(fd)
        new = flags & os.O_TRUNC or flags & (os.O_CREAT | os.O_EXCL) == os.O_CREAT | os.O_EXCL
        with self._lock:
            self._paths[fd] = path
            # A file met for the first time, or a path that now names another file
            # (deleted and created again, say after a wiped disk), is taken as durable up
            # to its size now; a file this call created holds nothing durable yet.
            if new or path not in self._synced or self._inodes.get(path) != st.st_ino:
                self._synced[path] = 0 if new else st.st_size
                self._inodes[path] = st.st_ino
        return fd

    def close(self, fd: int) -> None:
        with self._lock:
            self._paths.pop(fd, None)
        super().close(fd)

    def _path(self, fd: int) -> str:
        return self._paths.get(fd, "")

    def _tear(self, path: str) -> TornWrite | None:
        """The armed torn write, taken (it fires once), if it applies to ``path``."""
        with self._lock:
            torn = self._torn
            if torn is None or torn.path_part not in path:
                return None
            self._torn = None
            torn.fired = True
            return torn

    def _torn_done(self, torn: TornWrite, path: str) -> OSError:
        if torn.then is not None:
            torn.then()
        return OSError(_errno.EIO, "injected torn write", path)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        path = self._path(fd)
        self._check("write", path)
        if self._torn is not None and (torn := self._tear(path)) is not None:
            super().write(fd, memoryview(data)[: max(0, min(torn.keep_bytes, len(data) - 1))])
            raise self._torn_done(torn, path)
        return super().write(fd, data)

    def pwrite(self, fd: int, data: bytes, offset: int) -> None:
        path = self._path(fd)
        self._check("write", path)
        if self._torn is not None and (torn := self._tear(path)) is not None:
            super().pwrite(fd, data[: max(0, min(torn.keep_bytes, len(data) - 1))], offset)
            raise self._torn_done(torn, path)
        super().pwrite(fd, data, offset)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        self._check("read", self._path(fd))
        return super().pread(fd, size, offset)

    def fdatasync(self, fd: int) -> None:
        self._check("fsync", self._path(fd))
        # Only bytes written before the sync started are surely durable after it:
        # appends racing with it (another writer thread) are not.
        size = os.fstat(fd).st_size
        super().fdatasync(fd)
        self._mark_synced(fd, size)

    def fsync(self, fd: int) -> None:
        self._check("fsync", self._path(fd))
        size = os.fstat(fd).st_size
        super().fsync(fd)
        self._mark_synced(fd, size)

    def _mark_synced(self, fd: int, size: int) -> None:
        path = self._path(fd)
        with self._lock:
            halted = self._halted
            if path and not halted:
                self._synced[path] = size
        if halted:  # the power is gone: this sync must not lead to an acknowledgement
            self._park()

    def ftruncate(self, fd: int, size: int) -> None:
        path = self._path(fd)
        self._check("truncate", path)
        super().ftruncate(fd, size)
        with self._lock:
            if path in self._synced:
                self._synced[path] = min(self._synced[path], size)

    def rename(self, src: str, dst: str) -> None:
        self._check("rename", src)
        super().rename(src, dst)
        with self._lock:
            if src in self._synced:
                self._synced[dst] = self._synced.pop(src)
                self._inodes[dst] = self._inodes.pop(src)
            for fd, path in self._paths.items():
                if path == src:  # an open file keeps its descriptor under the new name
                    self._paths[fd] = dst

    def unlink(self, path: str) -> None:
        self._check("unlink", path)
        super().unlink(path)

    def fsync_dir(self, path: str) -> None:
        self._check("fsync_dir", path)
        super().fsync_dir(path)

    def makedirs(self, path: str) -> None:
        self._check("makedirs", path)
        super().makedirs(path)

    def statvfs(self, path: str) -> os.statvfs_result:
        self._check("statvfs", path)
        return super().statvfs(path)

    def lose_unsynced(self) -> list[str]:
        """Act out a power cut: cut every tracked file back to its last fsynced size.

        Call it only after the engine using this file system was abandoned (as a crashed
        process would be). Returns the paths that lost bytes.
        """
        lost = []
        with self._lock:
            for path, size in self._synced.items():
                try:
                    st = os.stat(path)
                    if st.st_ino != self._inodes.get(path):
                        continue  # another file under that name now, not one of ours
                    if st.st_size > size:
                        os.truncate(path, size)
                        lost.append(path)
                except FileNotFoundError:
                    continue
        return lost
