"""Disks as their own file systems for cluster tests: a size-limited tmpfs per data dir.

A tmpfs can fill up (ENOSPC), vanish under a running node (``umount -l``), be replaced
by an empty one, or turn read-only, which a directory on the root disk cannot. Mounting
needs root; ``available()`` says why it cannot be done here, and callers then run the
faults they can without it.

Memory: a tmpfs takes memory only for what it holds, up to its size; a test that fills
one (ENOSPC) pins that much RAM until the ballast is removed. The default size is
``DEFAULT_SIZE`` per disk.

Nodes may run in their own mount namespaces (``ip netns exec`` makes a copy of the
mount tree, a slave of the root one). A mount made after such a node started reaches
it only through a shared mount: ``Disks`` therefore bind-mounts its root over itself
and makes that mount shared before anything is mounted under it, so every later mount,
unmount and remount under the root propagates into the nodes' namespaces.

Read-only: ``mount -o remount,ro`` of a tmpfs is refused (EBUSY) while a node holds
files open for writing, and a node always does (segments, LMDB). ``read_only`` bind-
mounts the disk over itself and remounts that bind read-only: statvfs and every new
open see a read-only file system; files opened before stay writable at the file
system level (a real ``errors=remount-ro`` would fail those writes too).

Everything mounted is unmounted by ``close`` (lazily if busy), in reverse order, also
when the caller failed; use ``Disks`` as a context manager.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

DEFAULT_SIZE = "512m"
UNMOUNT_ATTEMPTS = 20
UNMOUNT_PAUSE_S = 0.1
MOUNT_TIMEOUT_S = 30.0


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=MOUNT_TIMEOUT_S,
                          check=False)


_available: str | bool | None = False  # False: not probed yet


def available() -> str | None:
    """None if tmpfs mounts can be made here, else why not (probed once)."""
    global _available
    if _available is not False:
        return _available  # type: ignore[return-value]
    why: str | None = None
    if os.geteuid() != 0:
        why = "mounting a tmpfs per disk needs root"
    elif shutil.which("mount") is None or shutil.which("umount") is None:
        why = "no mount/umount command on this machine"
    else:
        probe = Path(tempfile.mkdtemp(prefix="cairn-disks-probe-"))
        try:
            done = _run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe))
            if done.returncode:
                why = f"mounting a tmpfs failed: {done.stderr.strip()}"
            else:
                _run("umount", "-l", str(probe))
        finally:
            probe.rmdir()
    _available = why
    return why


def is_mount(path: Path) -> bool:
    """Whether something is mounted at ``path`` (a bind of a directory onto itself
    included, which ``os.path.ismount`` cannot see: same device as its parent)."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = line.split(" ", 5)[4]
            decoded = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), point)
            if decoded == target:
                return True
    return False


class Disks:
    """The tmpfs disks under one root directory; every mount is undone by ``close``."""

    def __init__(self, root: Path, size: str = DEFAULT_SIZE) -> None:
        self.root = root
        self.size = size
        self.mounted: list[Path] = []  # every mount made, in order (binds included)
        self.ballast: dict[Path, Path] = {}

    def _mount(self, *argv: str) -> None:
        done = _run("mount", *argv)
        if done.returncode:
            raise RuntimeError(f"mount {' '.join(argv)} failed: {done.stderr.strip()}")
        self.mounted.append(Path(argv[-1]))

    def share_root(self) -> None:
        """Bind the root over itself as a shared mount (see the module docstring)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._mount("--bind", str(self.root), str(self.root))
        done = _run("mount", "--make-shared", str(self.root))
        if done.returncode:
            raise RuntimeError(f"mount --make-shared failed: {done.stderr.strip()}")

    def mount(self, path: Path) -> Path:
        """A fresh empty tmpfs of ``size`` at ``path`` (created if missing)."""
        path.mkdir(parents=True, exist_ok=True)
        self._mount("-t", "tmpfs", "-o", f"size={self.size},mode=0755", "tmpfs", str(path))
        return path

    def vanish(self, path: Path) -> None:
        """Detach whatever is mounted at ``path`` at once (``umount -l``): open files
        stay usable, new lookups see the directory underneath."""
        while is_mount(path):
            done = _run("umount", "-l", str(path))
            if done.returncode:
                raise RuntimeError(f"umount -l {path} failed: {done.stderr.strip()}")

    def replace(self, path: Path) -> None:
        """The disk at ``path`` is swapped for an empty one."""
        self.vanish(path)
        self.mount(path)

    def read_only(self, path: Path) -> None:
        self._mount("--bind", str(path), str(path))
        done = _run("mount", "-o", "remount,ro,bind", str(path))
        if done.returncode:
            raise RuntimeError(f"remount,ro of {path} failed: {done.stderr.strip()}")

    def read_write(self, path: Path) -> None:
        """Undo ``read_only``: the bind stays (files opened through it may be open) but
        turns read-write again."""
        done = _run("mount", "-o", "remount,rw,bind", str(path))
        if done.returncode:
            raise RuntimeError(f"remount,rw of {path} failed: {done.stderr.strip()}")

    def fill(self, path: Path, chunk_bytes: int = 1 << 20) -> int:
        """Write a ballast file on the disk at ``path`` until ENOSPC; returns its size.
        ``unfill`` removes it."""
        ballast = path / ".ballast"  # a dot name: not counted as disk content
        self.ballast[path] = ballast
        written = 0
        chunk = b"\0" * chunk_bytes
        fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            while True:
                try:
                    n = os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno == 28 and len(chunk) > 1:  # ENOSPC: fill the last pages
                        chunk = chunk[: len(chunk) // 2]
                        continue
                    if exc.errno == 28:
                        break
                    raise
                written += n
        finally:
            os.close(fd)
        return written

    def unfill(self, path: Path) -> None:
        ballast = self.ballast.pop(path, None)
        if ballast is not None:
            ballast.unlink(missing_ok=True)

    def close(self) -> list[str]:
        """Unmount everything, newest first; busy mounts are detached lazily. Returns
        the mounts that needed a lazy unmount."""
        lazy = []
        for path in reversed(self.mounted):
            if not is_mount(path):
                continue
            for _attempt in range(UNMOUNT_ATTEMPTS):
                if _run("umount", str(path)).returncode == 0:
                    break
                time.sleep(UNMOUNT_PAUSE_S)
            else:
                _run("umount", "-l", str(path))
                lazy.append(str(path))
        # Detach anything left under the root (mounts stacked by a fault).
        for path in sorted({p for p in self.mounted if p != self.root},
                           key=lambda p: -len(p.parts)):
            while is_mount(path):
                if _run("umount", "-l", str(path)).returncode:
                    break
        while is_mount(self.root):
            if _run("umount", "-l", str(self.root)).returncode:
                break
        self.mounted.clear()
        return lazy

    def __enter__(self) -> Disks:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
