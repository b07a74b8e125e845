"""Byte layouts of every file the engine writes. The prose is docs/storage-format.md.

All integers are little-endian except LMDB keys, which are big-endian so that byte
order is numeric order. Every structure that lands on disk carries a CRC32C
(Castagnoli, via the hardware-accelerated ``crc32c`` package, which reads any
buffer without copying); decoding a damaged structure raises
``CorruptRecord`` and never returns guessed values.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import crc32c as _crc32c

from cairn.types import Version

# ---------------------------------------------------------------------------------
# Limits and constants
# ---------------------------------------------------------------------------------

FORMAT_VERSION: Final = 1

SEGMENT_MAGIC: Final = b"CAIRNSEG"
SEGMENT_HEADER: Final = struct.Struct("<8sBBHIQ4sI")  # 32 bytes, see docs
SEGMENT_HEADER_SIZE: Final = SEGMENT_HEADER.size
SEGMENT_KIND_LOG: Final = 0  # shared append log of many records
SEGMENT_KIND_SINGLE: Final = 1  # one large object, written whole then sealed

RECORD_MAGIC: Final = 0xCA1E
RECORD_PUT: Final = 1
RECORD_TOMBSTONE: Final = 2
RECORD_TYPES: Final = (RECORD_PUT, RECORD_TOMBSTONE)

# crc, magic, type, flags, physical_ms, logical, node_id, partition,
# bucket_len, key_len, meta_len, block_size, value_len
RECORD_HEADER: Final = struct.Struct("<IHBBQIIIHHIIQ")
RECORD_HEADER_SIZE: Final = RECORD_HEADER.size  # 48
CRC: Final = struct.Struct("<I")
CRC_SIZE: Final = 4

BLOCK_SIZE: Final = 64 * 1024  # value bytes covered by one block CRC
MAX_BUCKET_BYTES: Final = 63
MAX_KEY_BYTES: Final = 1024
MAX_META_BYTES: Final = 64 * 1024
MAX_CODEC_BYTES: Final = 64
MAX_VALUE_BYTES: Final = 1 << 50

META_FORMAT: Final = 1

INDEX_FORMAT: Final = 1
# crc, format, flags, reserved, physical_ms, logical, node_id, partition, checksum,
# segment_id, offset, record_len, value_len, meta_len, block_size, stored_ms
INDEX_ENTRY: Final = struct.Struct("<IBBHQIIIIQQQQIIQ")
INDEX_ENTRY_SIZE: Final = INDEX_ENTRY.size  # 80

ENTRY_TOMBSTONE: Final = 0x01
ENTRY_INLINE: Final = 0x02
ENTRY_DAMAGED: Final = 0x04

SEGMENT_STATE: Final = struct.Struct("<IBBHQQQQ")  # crc, format, kind, sealed, 4 x u64
SEGMENT_STATE_SIZE: Final = SEGMENT_STATE.size


class CorruptRecord(Exception):
    """A structure failed its CRC or its sanity checks. Internal to the engine."""


def crc32c(data: bytes | memoryview, crc: int = 0) -> int:
    """CRC32C of ``data``, continuing from ``crc``."""
    value: int = _crc32c.crc32c(data, crc)
    return value


# ---------------------------------------------------------------------------------
# Segment file header
# ---------------------------------------------------------------------------------


def encode_segment_header(segment_id: int, kind: int) -> bytes:
    body = SEGMENT_HEADER.pack(SEGMENT_MAGIC, FORMAT_VERSION, kind, 0, 0, segment_id, b"\0" * 4, 0)
    return body[:-CRC_SIZE] + CRC.pack(crc32c(body[:-CRC_SIZE]))


def decode_segment_header(data: bytes) -> tuple[int, int]:
    """Return (segment_id, kind) of a segment file header.

    Raises:
        CorruptRecord: wrong magic, unknown version or bad CRC.
    """
    if len(data) < SEGMENT_HEADER_SIZE:
        raise CorruptRecord("segment header is truncated")
    magic, version, kind, _r1, _r2, segment_id, _r3, crc = SEGMENT_HEADER.unpack_from(data)
    if magic != SEGMENT_MAGIC:
        raise CorruptRecord("not a cairn segment file (bad magic)")
    if crc != crc32c(data[: SEGMENT_HEADER_SIZE - CRC_SIZE]):
        raise CorruptRecord("segment header CRC mismatch")
    if version != FORMAT_VERSION:
        raise CorruptRecord(f"unsupported segment format version {version}")
    return segment_id, kind


# ---------------------------------------------------------------------------------
# Object metadata (codec, value checksum, user metadata): stored in records and index
# ---------------------------------------------------------------------------------


def encode_meta(codec: str, checksum: int, metadata: Mapping[str, str]) -> bytes:
    codec_b = codec.encode("ascii")
    parts = [struct.pack("<BB", META_FORMAT, len(codec_b)), codec_b]
    parts.append(struct.pack("<IH", checksum, len(metadata)))
    for name in sorted(metadata):
        name_b = name.encode("utf-8")
        value_b = metadata[name].encode("utf-8")
        parts.append(struct.pack("<H", len(name_b)))
        parts.append(name_b)
        parts.append(struct.pack("<H", len(value_b)))
        parts.append(value_b)
    return b"".join(parts)


def decode_meta(data: bytes) -> tuple[str, int, dict[str, str]]:
    """Return (codec, checksum, metadata).

    Raises:
        CorruptRecord: the bytes are not a valid metadata block.
    """
    try:
        fmt, codec_len = struct.unpack_from("<BB", data, 0)
        if fmt != META_FORMAT:
            raise CorruptRecord(f"unknown metadata format {fmt}")
        pos = 2
        codec = data[pos : pos + codec_len].decode("ascii")
        pos += codec_len
        checksum, count = struct.unpack_from("<IH", data, pos)
        pos += 6
        metadata: dict[str, str] = {}
        for _ in range(count):
            (n,) = struct.unpack_from("<H", data, pos)
            name = data[pos + 2 : pos + 2 + n].decode("utf-8")
            pos += 2 + n
            (n,) = struct.unpack_from("<H", data, pos)
            metadata[name] = data[pos + 2 : pos + 2 + n].decode("utf-8")
            pos += 2 + n
    except (struct.error, UnicodeDecodeError) as exc:
        raise CorruptRecord(f"bad metadata block: {exc}") from exc
    if pos != len(data):
        raise CorruptRecord("metadata block has trailing bytes")
    return codec, checksum, metadata


# ---------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordHeader:
    """The decoded fixed header of a record plus its names and metadata."""

    kind: int
    version: Version
    partition: int
    bucket: bytes
    key: bytes
    meta: bytes
    block_size: int
    value_len: int
    header_crc: int

    @property
    def prefix_len(self) -> int:
        """Bytes from the record start to the first value byte."""
        return RECORD_HEADER_SIZE + len(self.bucket) + len(self.key) + len(self.meta)

    @property
    def block_count(self) -> int:
        return block_count(self.value_len, self.block_size)

    @property
    def record_len(self) -> int:
        return record_len(self.prefix_len, self.value_len, self.block_size)


def block_count(value_len: int, block_size: int) -> int:
    return (value_len + block_size - 1) // block_size if value_len else 0


def record_len(prefix_len: int, value_len: int, block_size: int) -> int:
    return prefix_len + value_len + CRC_SIZE * block_count(value_len, block_size) + CRC_SIZE


def encode_record_prefix(
    kind: int,
    version: Version,
    partition: int,
    bucket: bytes,
    key: bytes,
    meta: bytes,
    value_len: int,
    block_size: int = BLOCK_SIZE,
) -> tuple[bytes, int]:
    """Encode header + bucket + key + meta. Returns (bytes, header_crc)."""
    fixed = RECORD_HEADER.pack(
        0, RECORD_MAGIC, kind, 0, version.physical_ms, version.logical, version.node_id,
        partition, len(bucket), len(key), len(meta), block_size, value_len,
    )
    header_crc = crc32c(meta, crc32c(key, crc32c(bucket, crc32c(fixed[CRC_SIZE:]))))
    return CRC.pack(header_crc) + fixed[CRC_SIZE:] + bucket + key + meta, header_crc


def encode_trailer(header_crc: int, block_crcs: list[int]) -> bytes:
    """The block CRC array and the trailer CRC that ties it to its header."""
    crcs = struct.pack(f"<{len(block_crcs)}I", *block_crcs)
    return crcs + CRC.pack(crc32c(crcs, crc32c(CRC.pack(header_crc))))


def block_crcs_of(value: bytes | memoryview, block_size: int = BLOCK_SIZE) -> list[int]:
    view = memoryview(value)
    return [crc32c(view[i : i + block_size]) for i in range(0, len(view), block_size)]


def encode_record(
    kind: int,
    version: Version,
    partition: int,
    bucket: bytes,
    key: bytes,
    meta: bytes,
    value: bytes,
    block_size: int = BLOCK_SIZE,
) -> bytes:
    """A whole record in memory (small values)."""
    prefix, header_crc = encode_record_prefix(
        kind, version, partition, bucket, key, meta, len(value), block_size
    )
    return b"".join((prefix, value, encode_trailer(header_crc, block_crcs_of(value, block_size))))


def decode_record_prefix(data: bytes | memoryview) -> RecordHeader:
    """Decode and verify a record's header, names and metadata.

    ``data`` must hold at least the prefix (a caller that does not know its length
    passes RECORD_HEADER_SIZE + MAX_BUCKET_BYTES + MAX_KEY_BYTES + MAX_META_BYTES bytes
    or up to the end of the file).

    Raises:
        CorruptRecord: bad magic, impossible lengths, or a header CRC mismatch.
    """
    if len(data) < RECORD_HEADER_SIZE:
        raise CorruptRecord("record header is truncated")
    (crc, magic, kind, _flags, ms, logical, node, partition, blen, klen, mlen, block_size,
     value_len) = RECORD_HEADER.unpack_from(data)
    if magic != RECORD_MAGIC:
        raise CorruptRecord("bad record magic")
    if kind not in RECORD_TYPES:
        raise CorruptRecord(f"unknown record type {kind}")
    if blen > MAX_BUCKET_BYTES or klen > MAX_KEY_BYTES or mlen > MAX_META_BYTES:
        raise CorruptRecord("record names or metadata longer than any valid record")
    if block_size == 0 or block_size > (1 << 30) or value_len > MAX_VALUE_BYTES:
        raise CorruptRecord("record value layout is impossible")
    end = RECORD_HEADER_SIZE + blen + klen + mlen
    if len(data) < end:
        raise CorruptRecord("record names are truncated")
    view = memoryview(data)
    names = view[RECORD_HEADER_SIZE:end]
    if crc != crc32c(names, crc32c(view[CRC_SIZE:RECORD_HEADER_SIZE])):
        raise CorruptRecord("record header CRC mismatch")
    bucket = bytes(names[:blen])
    key = bytes(names[blen : blen + klen])
    meta = bytes(names[blen + klen :])
    return RecordHeader(
        kind, Version(ms, logical, node), partition, bucket, key, meta, block_size, value_len, crc
    )


def decode_trailer(header: RecordHeader, data: bytes | memoryview) -> list[int]:
    """Verify a trailer (block CRCs + trailer CRC) and return the block CRCs.

    Raises:
        CorruptRecord: the trailer CRC does not match.
    """
    n = header.block_count
    if len(data) != CRC_SIZE * (n + 1):
        raise CorruptRecord("record trailer is truncated")
    view = memoryview(data)
    crcs = view[: CRC_SIZE * n]
    (trailer_crc,) = CRC.unpack_from(view, CRC_SIZE * n)
    if trailer_crc != crc32c(crcs, crc32c(CRC.pack(header.header_crc))):
        raise CorruptRecord("record trailer CRC mismatch")
    return list(struct.unpack(f"<{n}I", crcs))


# ---------------------------------------------------------------------------------
# LMDB keys and values
# ---------------------------------------------------------------------------------


def object_key(bucket: bytes, key: bytes) -> bytes:
    """Index key: bucket, NUL, key. Neither contains NUL, so keys sort by bucket then key."""
    return bucket + b"\0" + key


def split_object_key(okey: bytes) -> tuple[bytes, bytes]:
    bucket, _, key = okey.partition(b"\0")
    return bucket, key


def partition_key(partition: int, okey: bytes) -> bytes:
    return struct.pack(">I", partition) + okey


def segment_key(segment_id: int) -> bytes:
    return struct.pack(">Q", segment_id)


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One object's newest known version on a disk: where its bytes are and what they are."""

    version: Version
    flags: int
    partition: int
    checksum: int
    segment_id: int
    offset: int
    record_len: int
    value_len: int
    block_size: int
    stored_ms: int
    meta: bytes
    inline: bytes | None = None

    @property
    def tombstone(self) -> bool:
        return bool(self.flags & ENTRY_TOMBSTONE)

    @property
    def damaged(self) -> bool:
        return bool(self.flags & ENTRY_DAMAGED)


def encode_index_entry(e: IndexEntry) -> bytes:
    flags = e.flags | (ENTRY_INLINE if e.inline is not None else 0)
    body = INDEX_ENTRY.pack(
        0, INDEX_FORMAT, flags, 0, e.version.physical_ms, e.version.logical, e.version.node_id,
        e.partition, e.checksum, e.segment_id, e.offset, e.record_len, e.value_len, len(e.meta),
        e.block_size, e.stored_ms,
    )
    tail = e.meta + (e.inline or b"")
    crc = crc32c(tail, crc32c(body[CRC_SIZE:]))
    return CRC.pack(crc) + body[CRC_SIZE:] + tail


def decode_index_entry(data: bytes | memoryview) -> IndexEntry:
    """Decode and verify an index entry (LMDB hands back flipped bits without complaint).

    Raises:
        CorruptRecord: the entry's CRC does not match or its lengths are impossible.
    """
    if len(data) < INDEX_ENTRY_SIZE:
        raise CorruptRecord("index entry is truncated")
    (crc, fmt, flags, _r, ms, logical, node, partition, checksum, segment_id, offset, rec_len,
     value_len, meta_len, block_size, stored_ms) = INDEX_ENTRY.unpack_from(data)
    view = memoryview(data)
    if crc != crc32c(view[INDEX_ENTRY_SIZE:], crc32c(view[CRC_SIZE:INDEX_ENTRY_SIZE])):
        raise CorruptRecord("index entry CRC mismatch")
    if fmt != INDEX_FORMAT:
        raise CorruptRecord(f"unknown index entry format {fmt}")
    meta_end = INDEX_ENTRY_SIZE + meta_len
    inline: bytes | None = None
    if flags & ENTRY_INLINE:
        inline = bytes(view[meta_end:])
        if len(inline) != value_len:
            raise CorruptRecord("inline value length mismatch")
    elif len(view) != meta_end:
        raise CorruptRecord("index entry length mismatch")
    return IndexEntry(
        Version(ms, logical, node), flags & ~ENTRY_INLINE, partition, checksum, segment_id,
        offset, rec_len, value_len, block_size, stored_ms, bytes(view[INDEX_ENTRY_SIZE:meta_end]),
        inline,
    )


@dataclass(slots=True)
class SegmentState:
    """What the index knows of one segment file (mutable bookkeeping, rewritten per commit)."""

    segment_id: int
    kind: int
    sealed: bool
    committed_end: int  # bytes of the file known durable and indexed; the tail past it is cut
    live_bytes: int  # bytes of records the index still points at
    total_bytes: int  # bytes of all records committed into the file
    live_records: int


def encode_segment_state(s: SegmentState) -> bytes:
    body = SEGMENT_STATE.pack(
        0, FORMAT_VERSION, s.kind, int(s.sealed), s.committed_end, s.live_bytes, s.total_bytes,
        s.live_records,
    )
    return CRC.pack(crc32c(body[CRC_SIZE:])) + body[CRC_SIZE:]


def decode_segment_state(segment_id: int, data: bytes | memoryview) -> SegmentState:
    """Raises: CorruptRecord on a CRC mismatch."""
    if len(data) != SEGMENT_STATE_SIZE:
        raise CorruptRecord("segment state has the wrong length")
    crc, _fmt, kind, sealed, end, live, total, records = SEGMENT_STATE.unpack_from(data)
    if crc != crc32c(memoryview(data)[CRC_SIZE:]):
        raise CorruptRecord("segment state CRC mismatch")
    return SegmentState(segment_id, kind, bool(sealed), end, live, total, records)
