"""Local files for ``upload`` and ``download``: bounded reads, and writes that land only
after the bytes were verified.

Owns ``FileSource`` (a path or a readable binary file object, read in chunks; sized and
rewindable when it can seek) and ``FileSink`` (a temporary file next to the target
path, renamed over it only by ``commit``; or, for a file object target, a spool copied
into it only by ``commit``). ``AsyncFileSource`` and ``AsyncFileSink`` run the same
blocking file calls in a worker thread, so an ``AsyncClient`` never blocks its event
loop on a disk. No gRPC here, no decisions about retries.

Entry points: ``FileSource.open``, ``FileSink.open`` and their async twins.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import pathlib
import shutil
import tempfile
import uuid
from collections.abc import Callable
from typing import IO, Any, Final, TypeAlias

from cairn._core import CHUNK_BYTES
from cairn.errors import InvalidArgument

__all__ = [
    "AsyncFileSink",
    "AsyncFileSource",
    "FileSink",
    "FileSource",
    "Progress",
    "Source",
    "Target",
]

Source: TypeAlias = "str | os.PathLike[str] | IO[bytes]"
Target: TypeAlias = "str | os.PathLike[str] | IO[bytes]"
Progress: TypeAlias = Callable[[int, "int | None"], Any]
"""``progress(bytes_done, total)``; ``total`` is None when the size is not known."""

_PART_SUFFIX: Final = ".cairn-part"
_NEW_FILE_MODE: Final = 0o666  # like open(): the umask applies


class FileSource:
    """What ``upload`` reads: a path (opened and closed here) or a binary file object.

    ``size`` is known when the source can seek (it is then what is left from the
    current position); the upload then announces it, and reads exactly that many bytes.
    ``rewindable`` sources can be read again from the start by a retry.
    """

    def __init__(self, source: Source) -> None:
        if isinstance(source, str | os.PathLike):
            self._file: IO[bytes] = open(source, "rb")  # noqa: SIM115  # closed by close()
            self._owned = True
        elif callable(getattr(source, "read", None)):
            if isinstance(source, io.TextIOBase):
                raise InvalidArgument("upload reads bytes: open the source file in binary mode")
            self._file = source
            self._owned = False
        else:
            raise InvalidArgument(
                f"upload takes a path or a readable binary file object, not {type(source).__name__}"
            )
        self._start: int | None = None
        self.size: int | None = None
        try:
            if self._file.seekable():
                self._start = self._file.tell()
                self.size = self._file.seek(0, os.SEEK_END) - self._start
                self._file.seek(self._start)
        except (OSError, ValueError):
            self._start = self.size = None
        self._remaining = self.size

    @classmethod
    def open(cls, source: Source) -> FileSource:
        return cls(source)

    @property
    def rewindable(self) -> bool:
        return self._start is not None

    def read(self, limit: int = CHUNK_BYTES) -> bytes:
        """Up to ``limit`` bytes (never past the announced size); ``b""`` at the end.

        Raises:
            InvalidArgument: the file object gives text, not bytes.
        """
        if self._remaining is not None:
            limit = min(limit, self._remaining)
            if limit == 0:
                return b""
        data = self._file.read(limit)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidArgument("upload reads bytes: open the source file in binary mode")
        if self._remaining is not None:
            self._remaining -= len(data)
        return bytes(data)

    def rewind(self) -> None:
        """Go back to where the upload started (only when ``rewindable``)."""
        assert self._start is not None, "rewind() of a source that cannot seek"
        self._file.seek(self._start)
        self._remaining = self.size

    def close(self) -> None:
        if self._owned:
            self._file.close()


class FileSink:
    """Where ``download`` writes: nothing reaches the target before ``commit``.

    For a path, the bytes go to a temporary file next to it (same directory, so the
    rename is atomic), which ``commit`` fsyncs and renames over the target. For a file
    object, they go to an anonymous spool file, which ``commit`` copies into it. Either
    way the target sees only verified bytes; ``discard`` drops the temporary file.
    """

    def __init__(self, target: Target) -> None:
        self._target_path: pathlib.Path | None = None
        self._target_file: IO[bytes] | None = None
        self._part_path: pathlib.Path | None = None
        if isinstance(target, str | os.PathLike):
            path = pathlib.Path(target)
            part = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{_PART_SUFFIX}")
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _NEW_FILE_MODE)
            self._file: IO[bytes] = os.fdopen(fd, "wb")
            self._target_path, self._part_path = path, part
        elif callable(getattr(target, "write", None)):
            if isinstance(target, io.TextIOBase):
                raise InvalidArgument("download writes bytes: open the target in binary mode")
            self._target_file = target
            self._file = tempfile.TemporaryFile()  # noqa: SIM115  # closed by commit/discard
        else:
            raise InvalidArgument(
                f"download takes a path or a writable binary file object, not "
                f"{type(target).__name__}"
            )

    @classmethod
    def open(cls, target: Target) -> FileSink:
        return cls(target)

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def commit(self) -> None:
        """Hand the verified bytes to the target (rename, or copy into the file object)."""
        if self._target_path is not None:
            assert self._part_path is not None
            self._file.flush()
            os.fsync(self._file.fileno())  # the bytes are durable before the name is
            self._file.close()
            os.replace(self._part_path, self._target_path)
            self._part_path = None
            _fsync_dir(self._target_path.parent)
        else:
            assert self._target_file is not None
            self._file.seek(0)
            shutil.copyfileobj(self._file, self._target_file, CHUNK_BYTES)
            self._file.close()

    def discard(self) -> None:
        """Drop what was written; the target is untouched. Idempotent."""
        with contextlib.suppress(OSError):
            self._file.close()
        if self._part_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._part_path)
            self._part_path = None


def _fsync_dir(path: pathlib.Path) -> None:
    # Makes the rename durable; some file systems refuse to open a directory: best effort.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AsyncFileSource:
    """``FileSource`` for ``AsyncClient``: every file call runs in a worker thread."""

    def __init__(self, source: FileSource) -> None:
        self._source = source

    @classmethod
    async def open(cls, source: Source) -> AsyncFileSource:
        return cls(await asyncio.to_thread(FileSource, source))

    @property
    def size(self) -> int | None:
        return self._source.size

    @property
    def rewindable(self) -> bool:
        return self._source.rewindable

    async def read(self, limit: int = CHUNK_BYTES) -> bytes:
        return await asyncio.to_thread(self._source.read, limit)

    async def rewind(self) -> None:
        await asyncio.to_thread(self._source.rewind)

    async def close(self) -> None:
        await asyncio.to_thread(self._source.close)


class AsyncFileSink:
    """``FileSink`` for ``AsyncClient``: every file call runs in a worker thread."""

    def __init__(self, sink: FileSink) -> None:
        self._sink = sink

    @classmethod
    async def open(cls, target: Target) -> AsyncFileSink:
        return cls(await asyncio.to_thread(FileSink, target))

    async def write(self, data: bytes) -> None:
        await asyncio.to_thread(self._sink.write, data)

    async def commit(self) -> None:
        await asyncio.to_thread(self._sink.commit)

    async def discard(self) -> None:
        # Inline, not in a thread: discard runs in cleanup paths of cancelled tasks,
        # and closing plus unlinking one file is quick.
        self._sink.discard()
