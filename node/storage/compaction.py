"""Compaction: rewrite segments whose live share fell below a threshold.

Live records are copied through the normal append path, and each copy is indexed only if
the index still points at the old place (a compare-and-set inside the group commit), so
writes that race with compaction always win. A segment is forgotten (index first, then
the file) only once no entry points into it. A crash at any point leaves the index
pointing at durable bytes: either the old copy (still there) or the new one (committed).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import dataclass, field

from cairn.errors import CairnError

from . import format as fmt
from .disk import Disk, Outcome

log = logging.getLogger("cairn.storage")

__all__ = ["CompactionReport", "compact_disk"]


@dataclass
class CompactionReport:
    """What one compaction pass did on one disk."""

    disk: str
    segments_compacted: int = 0
    segments_dropped: int = 0
    records_moved: int = 0
    tombstones_purged: int = 0
    bytes_reclaimed: int = 0
    errors: list[str] = field(default_factory=list)


def _candidates(disk: Disk, live_ratio: float, force: bool) -> list[fmt.SegmentState]:
    out = []
    for st in disk.segment_states():
        if not st.sealed:
            continue
        sparse = st.kind == fmt.SEGMENT_KIND_LOG and st.total_bytes > 0 and (
            st.live_bytes / st.total_bytes < live_ratio
        )
        if st.live_records == 0:
            out.append(st)
        elif st.kind == fmt.SEGMENT_KIND_LOG and (force or sparse):
            # A single-object segment is all live or all dead: never copied, so no
            # large object is ever held in memory by compaction.
            out.append(st)
    # Dead segments first: dropping them needs no space, which a full disk lacks.
    return sorted(out, key=lambda s: (s.live_records > 0, s.segment_id))


def compact_disk(disk: Disk, *, live_ratio: float, tombstone_grace_ms: int, now_ms: int,
                 force: bool = False) -> CompactionReport:
    """Compact every sealed segment of ``disk`` below ``live_ratio`` (or all, if ``force``).

    Tombstones stored more than ``tombstone_grace_ms`` ago are purged instead of copied.
    """
    report = CompactionReport(disk.path)
    for st in _candidates(disk, live_ratio, force):
        try:
            if st.live_records:
                _rewrite(disk, st, tombstone_grace_ms, now_ms, report)
            after = disk.segment_state(st.segment_id)
            if after is not None and after.live_records == 0 and disk.drop_segment(
                    st.segment_id):
                report.segments_dropped += 1
                report.bytes_reclaimed += after.committed_end
            report.segments_compacted += 1
        except (CairnError, OSError) as exc:
            report.errors.append(f"segment {st.segment_id}: {exc}")
            log.warning("compaction of segment %s on %s stopped: %s", st.segment_id,
                        disk.path, exc)
    return report


def _rewrite(disk: Disk, st: fmt.SegmentState, grace_ms: int, now_ms: int,
             report: CompactionReport) -> None:
    fd = disk.acquire_segment(st.segment_id)
    waits: list[tuple[Future[tuple[Outcome, fmt.IndexEntry | None]], bool]] = []
    try:
        for okey, entry, record in _live_records(disk, fd, st):
            if entry.tombstone and now_ms - entry.stored_ms > grace_ms:
                waits.append((disk.remove_entry(okey, entry), True))
            else:
                waits.append((disk.append(okey, entry, record,
                                          move_from=(entry.segment_id, entry.offset)), False))
            # Bound the memory held by queued copies.
            if len(waits) >= 256:
                _settle(waits, report)
        _settle(waits, report)
    finally:
        disk.release_segment(st.segment_id, fd)


def _settle(waits: list[tuple[Future[tuple[Outcome, fmt.IndexEntry | None]], bool]],
            report: CompactionReport) -> None:
    for future, _purge in waits:
        outcome, _ = future.result()
        if outcome == Outcome.MOVED:
            report.records_moved += 1
        elif outcome == Outcome.REMOVED:
            report.tombstones_purged += 1
    waits.clear()


def _live_records(disk: Disk, fd: int, st: fmt.SegmentState):  # type: ignore[no-untyped-def]
    """Yield (okey, entry, verified record bytes) for records the index points at.

    Walks the file front to back; if a header is unreadable the walk cannot find the next
    record, so the rest of the segment's live entries are found through the index.
    """
    pos, end = fmt.SEGMENT_HEADER_SIZE, st.committed_end
    seen: set[int] = set()
    while pos < end:
        try:
            head = disk.fs.pread(fd, min(end - pos, fmt.RECORD_HEADER_SIZE + 70000), pos)
            header = fmt.decode_record_prefix(head)
        except fmt.CorruptRecord:
            log.warning("segment %s: unreadable record at %d; using the index for the rest",
                        st.segment_id, pos)
            break
        okey = fmt.object_key(header.bucket, header.key)
        entry = _lookup(disk, okey)
        if entry is not None and (entry.segment_id, entry.offset) == (st.segment_id, pos):
            record = _verified(disk, fd, okey, entry)
            if record is not None:
                seen.add(pos)
                yield okey, entry, record
        pos += header.record_len
    else:
        return
    for okey, entry in disk.scan(b"", b""):
        if entry is None or entry.segment_id != st.segment_id or entry.offset in seen:
            continue
        if entry.offset < pos:
            continue
        record = _verified(disk, fd, okey, entry)
        if record is not None:
            yield okey, entry, record


def _lookup(disk: Disk, okey: bytes) -> fmt.IndexEntry | None:
    try:
        return disk.lookup(okey)
    except CairnError:
        return None


def _verified(disk: Disk, fd: int, okey: bytes, entry: fmt.IndexEntry) -> bytes | None:
    """The whole record, if every CRC in it holds; a damaged one is flagged and kept."""
    record = disk.fs.pread(fd, entry.record_len, entry.offset)
    try:
        header = fmt.decode_record_prefix(record)
        view = memoryview(record)
        crcs = fmt.decode_trailer(header, view[header.prefix_len + header.value_len :])
        value = view[header.prefix_len : header.prefix_len + header.value_len]
        if fmt.block_crcs_of(value, header.block_size) != crcs:
            raise fmt.CorruptRecord("a block CRC does not match")
        if (header.record_len != entry.record_len or header.version != entry.version):
            raise fmt.CorruptRecord("record differs from its index entry")
    except fmt.CorruptRecord as exc:
        log.error("compaction found %r damaged: %s; leaving it for repair", okey, exc)
        disk.mark_damaged(okey, entry)
        return None
    return record
