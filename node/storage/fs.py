"""The engine's only door to the file system, so tests can fail it on purpose.

``FileSystem`` is a thin veneer over ``os``: it costs one attribute lookup per call.
``FaultyFileSystem`` wraps it for tests and the chaos suite (STYLE 2.6): it fails the
Nth call of a named operation with a chosen errno, and it remembers how much of each
file was made durable so ``lose_unsynced()`` can act out a power cut (every byte
appended after the file's last fsync vanishes).
"""

from __future__ import annotations

import errno as _errno
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Fault", "FaultyFileSystem", "FileSystem"]


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


class FaultyFileSystem(FileSystem):
    """A FileSystem that fails chosen calls and can forget unsynced appends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._paths: dict[int, str] = {}
        self._synced: dict[str, int] = {}
        self.on_call: Callable[[str, str], None] | None = None

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def _check(self, op: str, path: str) -> None:
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
        with self._lock:
            self._paths[fd] = path
            if path not in self._synced:
                self._synced[path] = os.fstat(fd).st_size
        return fd

    def close(self, fd: int) -> None:
        with self._lock:
            self._paths.pop(fd, None)
        super().close(fd)

    def _path(self, fd: int) -> str:
        return self._paths.get(fd, "")

    def write(self, fd: int, data: bytes | memoryview) -> int:
        self._check("write", self._path(fd))
        return super().write(fd, data)

    def pwrite(self, fd: int, data: bytes, offset: int) -> None:
        self._check("write", self._path(fd))
        super().pwrite(fd, data, offset)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        self._check("read", self._path(fd))
        return super().pread(fd, size, offset)

    def fdatasync(self, fd: int) -> None:
        self._check("fsync", self._path(fd))
        super().fdatasync(fd)
        self._mark_synced(fd)

    def fsync(self, fd: int) -> None:
        self._check("fsync", self._path(fd))
        super().fsync(fd)
        self._mark_synced(fd)

    def _mark_synced(self, fd: int) -> None:
        path = self._path(fd)
        if path:
            with self._lock:
                self._synced[path] = os.fstat(fd).st_size

    def ftruncate(self, fd: int, size: int) -> None:
        self._check("truncate", self._path(fd))
        super().ftruncate(fd, size)

    def rename(self, src: str, dst: str) -> None:
        self._check("rename", src)
        super().rename(src, dst)
        with self._lock:
            if src in self._synced:
                self._synced[dst] = self._synced.pop(src)
            for fd, path in self._paths.items():
                if path == src:  # an open file keeps its descriptor under the new name
                    self._paths[fd] = dst

    def unlink(self, path: str) -> None:
        self._check("unlink", path)
        super().unlink(path)

    def fsync_dir(self, path: str) -> None:
        self._check("fsync_dir", path)
        super().fsync_dir(path)

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
                    if os.path.getsize(path) > size:
                        os.truncate(path, size)
                        lost.append(path)
                except FileNotFoundError:
                    continue
        return lost
