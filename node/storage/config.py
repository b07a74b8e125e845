"""Engine configuration: one frozen dataclass, every field documented, validated once."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

from cairn.errors import InvalidArgument

from . import format as fmt

__all__ = ["SYNC_ALWAYS", "SYNC_UNSAFE_NEVER", "EngineConfig"]

SYNC_ALWAYS: Final = "always"
# Never fsyncs: a crash or power cut loses acknowledged writes. For benchmarks only.
SYNC_UNSAFE_NEVER: Final = "unsafe-never"
SYNC_MODES: Final = (SYNC_ALWAYS, SYNC_UNSAFE_NEVER)

MiB: Final = 1024 * 1024
GiB: Final = 1024 * MiB


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """How one node's engine stores objects on its disks.

    Attributes:
        disks: data directories, one per disk (at least one). Each holds its own LMDB
            index and segment files, and a ``CAIRN-DISK`` identity marker.
        sync: ``"always"`` (default): a put returns only after its bytes and index entry
            are fsynced, shared by concurrent puts (group commit). ``"unsafe-never"``:
            no fsync at all; acknowledged writes are lost on a crash. Benchmarks only.
        segment_max_bytes: a log segment is sealed once it reaches this size (bytes,
            1 MiB..4 GiB, default 256 MiB).
        large_object_bytes: values of at least this many bytes, and streams that grow
            past it, are written to a segment of their own (bytes, default 8 MiB).
        inline_max_bytes: values up to this size are also kept inside the LMDB index
            entry so reads skip the segment file (bytes, 0 disables; default 0: see
            docs/storage.md for the measurement behind that).
        block_size: value bytes covered by one CRC in a record (bytes, power of two,
            4 KiB..16 MiB, default 64 KiB). Range reads verify whole blocks.
        compaction_live_ratio: sealed segments whose live share falls below this are
            rewritten by ``compact()`` (0..1, default 0.5).
        min_free_bytes: a disk with less free space than this is treated as full:
            writes fail with DiskFull, reads go on (bytes, default 64 MiB).
        map_size_bytes: the initial LMDB map size; it grows by doubling when full
            (bytes, default 16 GiB; address space only, not disk).
        max_batch_records: the most writes one group commit takes (1..65536, default 4096).
        read_chunk_bytes: size of the chunks a reader yields (bytes, default 1 MiB).
        tombstone_grace_s: tombstones younger than this are never purged; it must
            exceed any hint or repair window (seconds, default 10 days).
        max_key_bytes / max_meta_bytes / max_value_bytes: limits on one object.
    """

    disks: tuple[str, ...]
    sync: str = SYNC_ALWAYS
    segment_max_bytes: int = 256 * MiB
    large_object_bytes: int = 8 * MiB
    inline_max_bytes: int = 0
    block_size: int = fmt.BLOCK_SIZE
    compaction_live_ratio: float = 0.5
    min_free_bytes: int = 64 * MiB
    map_size_bytes: int = 16 * GiB
    max_batch_records: int = 4096
    read_chunk_bytes: int = MiB
    tombstone_grace_s: float = 10 * 24 * 3600.0
    max_key_bytes: int = fmt.MAX_KEY_BYTES
    max_meta_bytes: int = 8 * 1024
    max_value_bytes: int = 1 << 40

    @classmethod
    def from_mapping(cls, values: dict[str, object]) -> EngineConfig:
        """Build from a plain mapping (a TOML table), rejecting unknown keys.

        Raises:
            InvalidArgument: an unknown key or an invalid value.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidArgument(f"unknown engine settings: {', '.join(unknown)}")
        data = dict(values)
        if "disks" in data:
            data["disks"] = tuple(str(d) for d in data["disks"])  # type: ignore[attr-defined]
        return cls(**data).validate()  # type: ignore[arg-type]

    def validate(self) -> EngineConfig:
        """Check every field and cross-field rule once, at startup.

        Raises:
            InvalidArgument: naming the field and the allowed range.
        """
        problems = []
        if not self.disks:
            problems.append("disks: at least one data directory is needed")
        if len(set(self.disks)) != len(self.disks):
            problems.append("disks: a directory is listed twice")
        if self.sync not in SYNC_MODES:
            problems.append(f"sync: must be one of {SYNC_MODES}, not {self.sync!r}")
        if not MiB <= self.segment_max_bytes <= 4 * GiB:
            problems.append("segment_max_bytes: must be 1 MiB..4 GiB")
        if not 64 * 1024 <= self.large_object_bytes <= 4 * GiB:
            problems.append("large_object_bytes: must be 64 KiB..4 GiB")
        if not 0 <= self.inline_max_bytes <= 64 * 1024:
            problems.append("inline_max_bytes: must be 0..64 KiB")
        bs = self.block_size
        if bs & (bs - 1) or not 4096 <= bs <= 16 * MiB:
            problems.append("block_size: must be a power of two, 4 KiB..16 MiB")
        if not 0.0 <= self.compaction_live_ratio <= 1.0:
            problems.append("compaction_live_ratio: must be 0..1")
        if self.min_free_bytes < 0:
            problems.append("min_free_bytes: must be >= 0")
        if self.map_size_bytes < MiB:
            problems.append("map_size_bytes: must be at least 1 MiB")
        if not 1 <= self.max_batch_records <= 65536:
            problems.append("max_batch_records: must be 1..65536")
        if not 4096 <= self.read_chunk_bytes <= 64 * MiB:
            problems.append("read_chunk_bytes: must be 4 KiB..64 MiB")
        if self.tombstone_grace_s < 0:
            problems.append("tombstone_grace_s: must be >= 0")
        if not 1 <= self.max_key_bytes <= fmt.MAX_KEY_BYTES:
            problems.append(f"max_key_bytes: must be 1..{fmt.MAX_KEY_BYTES}")
        if not 0 <= self.max_meta_bytes <= fmt.MAX_META_BYTES:
            problems.append(f"max_meta_bytes: must be 0..{fmt.MAX_META_BYTES}")
        if not 0 <= self.max_value_bytes <= fmt.MAX_VALUE_BYTES:
            problems.append("max_value_bytes: out of range")
        if problems:
            raise InvalidArgument("invalid engine config: " + "; ".join(problems))
        return self
