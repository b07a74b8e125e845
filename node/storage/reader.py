"""Reading records back: every byte handed out has passed its CRC first (STYLE 2.4)."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING

from cairn.errors import CairnError, DiskUnavailable, IntegrityError
from cairn.types import Version

from . import format as fmt

if TYPE_CHECKING:
    from .disk import Disk

# Records up to this size are read with a single pread.
WHOLE_RECORD_READ_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What the engine knows of one object version (or tombstone) on this node."""

    bucket: str
    key: bytes
    version: Version
    size: int
    checksum: int
    codec: str
    metadata: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))
    partition: int = 0
    deleted: bool = False
    stored_ms: int = 0
    damaged: bool = False
    tier: str = "local"


def info_from_entry(okey: bytes, entry: fmt.IndexEntry) -> ObjectInfo:
    """Build the public view of an index entry.

    Raises:
        IntegrityError: the entry's metadata block is corrupt.
    """
    bucket, key = fmt.split_object_key(okey)
    try:
        codec, _checksum, metadata = fmt.decode_meta(entry.meta)
    except fmt.CorruptRecord as exc:
        raise IntegrityError(f"metadata of {key!r} is corrupt: {exc}") from exc
    return ObjectInfo(
        bucket=bucket.decode("ascii", "replace"),
        key=key,
        version=entry.version,
        size=entry.value_len,
        checksum=entry.checksum,
        codec=codec,
        metadata=MappingProxyType(metadata),
        partition=entry.partition,
        deleted=entry.tombstone,
        stored_ms=entry.stored_ms,
        damaged=entry.damaged,
    )


class ObjectReader:
    """Streams the bytes ``[start, end)`` of one object, verifying each block's CRC.

    Iterate it for chunks of at most ``chunk_bytes``; ``read()`` returns everything.
    Damaged bytes raise ``IntegrityError`` (and flag the copy) instead of being returned.
    Use it as a context manager or call ``close()``; it holds no transaction, only an
    fd reference, so a slow consumer does not hold up the index.
    """

    def __init__(
        self,
        disk: Disk,
        okey: bytes,
        entry: fmt.IndexEntry,
        info: ObjectInfo,
        start: int,
        end: int,
        chunk_bytes: int,
        fd: int | None = None,
    ) -> None:
        """``fd``, if given, is a segment reference already taken for ``entry``; the
        reader releases it."""
        self.info = info
        self.start = start
        self.end = end
        self._disk = disk
        self._okey = okey
        self._entry = entry
        self._chunk_bytes = chunk_bytes
        self._fd: int | None = fd

    @property
    def length(self) -> int:
        return self.end - self.start

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            self._disk.release_segment(self._entry.segment_id, self._fd)
            self._fd = None

    def read(self) -> bytes:
        """All bytes of the range, verified.

        Raises:
            IntegrityError: a checksum did not match.
            DiskUnavailable: the disk failed while reading.
        """
        try:
            return b"".join(self)
        finally:
            self.close()

    def __iter__(self) -> Iterator[bytes]:
        try:
            if self._entry.inline is not None:
                yield from self._inline()
            else:
                yield from self._from_segment()
        except fmt.CorruptRecord as exc:
            self._damaged(str(exc))
        except FileNotFoundError:
            self._damaged("its segment file is missing")
        except OSError as exc:
            raise self._disk_error(exc) from exc
        finally:
            self.close()

    def _damaged(self, why: str) -> None:
        self._disk.mark_damaged(self._okey, self._entry)
        raise IntegrityError(
            f"object {self.info.bucket}/{self.info.key!r} version {self.info.version} on "
            f"{self._disk.path} is damaged: {why}",
            bucket=self.info.bucket, key=self.info.key, disk=self._disk.path,
        )

    def _disk_error(self, exc: OSError) -> CairnError:
        if exc.errno == errno.EIO:
            self._disk._fail(f"I/O error while reading: {exc}")
        return DiskUnavailable(f"disk {self._disk.path} could not be read: {exc}")

    def _inline(self) -> Iterator[bytes]:
        value = self._entry.inline
        assert value is not None
        if fmt.crc32c(value) != self._entry.checksum:
            raise fmt.CorruptRecord("inline value checksum mismatch")
        if self.end > self.start:
            yield value[self.start : self.end]

    def _from_segment(self) -> Iterator[bytes]:
        entry = self._entry
        if self._fd is None:
            self._fd = self._disk.acquire_segment(entry.segment_id)
        fs = self._disk.fs
        if entry.record_len <= WHOLE_RECORD_READ_BYTES:
            record = fs.pread(self._fd, entry.record_len, entry.offset)
            if len(record) != entry.record_len:
                raise fmt.CorruptRecord("record is truncated")
            header = self._check_header(record)
            view = memoryview(record)
            first = header.prefix_len
            crcs = fmt.decode_trailer(header, view[first + header.value_len :])
            yield from self._verified_blocks(header, crcs, lambda off, n: view[off : off + n],
                                             first)
            return
        okey_len = len(self._okey) - 1
        prefix_len = fmt.RECORD_HEADER_SIZE + okey_len + len(entry.meta)
        head = fs.pread(self._fd, prefix_len, entry.offset)
        header = self._check_header(head)
        trailer_len = fmt.CRC_SIZE * (header.block_count + 1)
        trailer_at = entry.offset + header.prefix_len + header.value_len
        crcs = fmt.decode_trailer(header, fs.pread(self._fd, trailer_len, trailer_at))
        base = entry.offset + header.prefix_len
        fd = self._fd

        def read_at(off: int, n: int) -> bytes:
            data = fs.pread(fd, n, off)
            if len(data) != n:
                raise fmt.CorruptRecord("record is truncated")
            return data

        yield from self._verified_blocks(header, crcs, read_at, base)

    def _check_header(self, data: bytes) -> fmt.RecordHeader:
        header = fmt.decode_record_prefix(data)
        bucket, key = fmt.split_object_key(self._okey)
        e = self._entry
        if (header.bucket, header.key, header.version, header.value_len) != (
            bucket, key, e.version, e.value_len,
        ):
            raise fmt.CorruptRecord("the record at the indexed place is another object")
        if header.record_len != e.record_len:
            raise fmt.CorruptRecord("record length differs from the index")
        return header

    def _verified_blocks(self, header: fmt.RecordHeader, crcs: list[int], read_at: object,
                         base: int) -> Iterator[bytes]:
        """Yield [start, end) in chunks; every block touched is checked against its CRC."""
        read = read_at  # (offset, length) -> bytes-like
        bs = header.block_size
        if self.end <= self.start:
            return
        first_block = self.start // bs
        last_block = (self.end - 1) // bs
        per_chunk = max(1, self._chunk_bytes // bs)
        block = first_block
        while block <= last_block:
            upto = min(last_block + 1, block + per_chunk)
            lo = block * bs
            hi = min(upto * bs, header.value_len)
            data = read(base + lo, hi - lo)  # type: ignore[operator]
            view = memoryview(data)
            for i in range(block, upto):
                b_lo = (i - block) * bs
                if fmt.crc32c(view[b_lo : b_lo + bs]) != crcs[i]:
                    raise fmt.CorruptRecord(f"block {i} CRC mismatch")
            cut_lo = max(self.start, lo) - lo
            cut_hi = min(self.end, hi) - lo
            yield bytes(view[cut_lo:cut_hi])
            block = upto
