"""Scrub: read every indexed record of a disk, verify every CRC, report what is damaged."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from cairn.errors import CairnError, IntegrityError
from cairn.types import Version

from . import format as fmt
from .disk import Disk
from .reader import ObjectReader, info_from_entry

__all__ = ["DamagedRecord", "ScrubReport", "scrub_disk", "verify_entry"]


@dataclass(frozen=True, slots=True)
class DamagedRecord:
    """One object whose stored copy on this disk failed verification."""

    disk: str
    bucket: str
    key: bytes
    version: Version | None  # None when the index entry itself is unreadable
    reason: str


@dataclass
class ScrubReport:
    disk: str
    records_checked: int = 0
    bytes_checked: int = 0
    damaged: list[DamagedRecord] = field(default_factory=list)
    seconds: float = 0.0


def scrub_disk(disk: Disk, *, rate_bytes_s: float | None = None,
               sleep: Callable[[float], None] = time.sleep) -> ScrubReport:
    """Verify every record the index of ``disk`` points at, in file order.

    Damaged copies are flagged in the index (never served again) and listed in the
    report. ``rate_bytes_s`` throttles the reads.
    """
    started = time.monotonic()
    report = ScrubReport(disk.path)
    todo: list[tuple[int, int, bytes, fmt.IndexEntry]] = []
    for okey, entry in disk.scan(b"", b""):
        bucket, key = fmt.split_object_key(okey)
        if entry is None:
            report.damaged.append(DamagedRecord(disk.path, bucket.decode("ascii", "replace"),
                                                key, None, "index entry is corrupt"))
            continue
        todo.append((entry.segment_id, entry.offset, okey, entry))
    todo.sort(key=lambda t: (t[0], t[1]))
    for _sid, _off, okey, entry in todo:
        bucket, key = fmt.split_object_key(okey)
        report.records_checked += 1
        report.bytes_checked += entry.record_len
        reason = _verify(disk, okey, entry)
        if reason is not None:
            report.damaged.append(DamagedRecord(
                disk.path, bucket.decode("ascii", "replace"), key, entry.version, reason))
        if rate_bytes_s:
            ahead = report.bytes_checked / rate_bytes_s - (time.monotonic() - started)
            if ahead > 0:
                sleep(ahead)
    report.seconds = time.monotonic() - started
    return report


def verify_entry(disk: Disk, okey: bytes) -> str | None:
    """Verify the current copy of one object on ``disk``: None if whole, else why not
    (the copy is then flagged damaged and never served)."""
    return _verify(disk, okey, None)


def _verify(disk: Disk, okey: bytes, listed: fmt.IndexEntry | None) -> str | None:
    """None if the copy is whole; else why not. Checks the segment record (every CRC
    and the whole-value checksum) and, if present, the inline copy too.

    Compaction may move the record while the scrub runs: the entry is looked up again
    and the file reference taken before reading, so a moved record is not mistaken for
    a missing one.
    """
    for _attempt in range(3):
        try:
            entry = disk.lookup(okey)
        except IntegrityError as exc:
            return str(exc)
        except CairnError as exc:
            return f"unreadable: {exc}"
        if entry is None:
            return None  # purged since it was listed
        if entry.damaged:
            return "flagged damaged earlier"
        try:
            fd = disk.acquire_segment(entry.segment_id)
        except FileNotFoundError:
            if disk.lookup(okey) != entry:
                continue  # moved by compaction meanwhile: look again
            fd = None
        if fd is not None and disk.segment_file_lost(entry.segment_id, fd):
            # Deleted under the node: the open descriptor still reads it, the disk no
            # longer holds it (chaos fault ``truncate``). Reads now fail on it too.
            disk.release_segment(entry.segment_id, fd)
            if disk.lookup(okey) != entry:
                continue
            disk.mark_damaged(okey, entry)
            return "its segment file is missing"
        return _check(disk, okey, entry, fd)
    return None if listed is None else _check(disk, okey, listed, None)


def _check(disk: Disk, okey: bytes, entry: fmt.IndexEntry, fd: int | None) -> str | None:
    try:
        info = info_from_entry(okey, entry)
        reader = ObjectReader(disk, okey, replace(entry, inline=None), info, 0,
                              entry.value_len, disk.config.read_chunk_bytes, fd)
        crc = 0
        for chunk in reader:
            crc = fmt.crc32c(chunk, crc)
        if crc != entry.checksum:
            disk.mark_damaged(okey, entry)
            return "value checksum mismatch"
        if entry.inline is not None:
            ObjectReader(disk, okey, entry, info, 0, entry.value_len,
                         disk.config.read_chunk_bytes).read()
    except IntegrityError as exc:
        return str(exc)
    except CairnError as exc:
        return f"unreadable: {exc}"
    return None
