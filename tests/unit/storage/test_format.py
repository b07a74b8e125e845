from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.node.storage import format as fmt
from cairn.types import Version

pytestmark = pytest.mark.unit


def test_sizes_are_what_the_format_doc_says():
    assert fmt.SEGMENT_HEADER_SIZE == 32
    assert fmt.RECORD_HEADER_SIZE == 48
    assert fmt.INDEX_ENTRY_SIZE == 80
    assert fmt.SEGMENT_STATE_SIZE == 40


def test_golden_record_bytes():
    """The worked example of docs/storage-format.md, byte for byte."""
    meta = fmt.encode_meta("raw", fmt.crc32c(b"hi"), {})
    record = fmt.encode_record(fmt.RECORD_PUT, Version(1700000000000, 1, 7), 42, b"app", b"k",
                               meta, b"hi", 65536)
    assert len(record) == 48 + 3 + 1 + len(meta) + 2 + 4 + 4
    assert record.hex() == (
        "220c0e261eca01000068e5cf8b01000001000000070000002a000000030001000b"
        "0000000000010002000000000000006170706b0103726177c2d99df500006869"
        "c2d99df53b97195f"
    )


@given(
    value=st.binary(max_size=5000),
    block=st.sampled_from([4096, 65536]),
    key=st.binary(min_size=1, max_size=50),
    metadata=st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=5), max_size=3),
)
def test_record_round_trip(value, block, key, metadata):
    meta = fmt.encode_meta("json", 5, metadata)
    record = fmt.encode_record(fmt.RECORD_PUT, Version(3, 2, 1), 9, b"bkt", key, meta, value,
                               block)
    header = fmt.decode_record_prefix(record)
    assert (header.key, header.partition, header.value_len) == (key, 9, len(value))
    assert header.record_len == len(record)
    crcs = fmt.decode_trailer(header, record[header.prefix_len + len(value):])
    assert crcs == fmt.block_crcs_of(value, block)
    assert fmt.decode_meta(header.meta) == ("json", 5, metadata)


@given(st.data())
def test_any_flipped_bit_in_a_record_is_detected(data):
    value = data.draw(st.binary(min_size=1, max_size=300))
    record = bytearray(fmt.encode_record(fmt.RECORD_PUT, Version(1, 0, 0), 0, b"bkt", b"k",
                                         fmt.encode_meta("raw", 0, {}), value, 4096))
    pos = data.draw(st.integers(0, len(record) - 1))
    bit = data.draw(st.integers(0, 7))
    record[pos] ^= 1 << bit
    with pytest.raises(fmt.CorruptRecord):
        _verify_whole_record(bytes(record))


def _verify_whole_record(record: bytes) -> None:
    header = fmt.decode_record_prefix(record)
    body = record[header.prefix_len:]
    crcs = fmt.decode_trailer(header, body[header.value_len:])
    if fmt.block_crcs_of(body[: header.value_len], header.block_size) != crcs:
        raise fmt.CorruptRecord("block")
    if header.record_len != len(record):
        raise fmt.CorruptRecord("length")


@given(st.data())
def test_any_flipped_bit_in_an_index_entry_is_detected(data):
    entry = fmt.IndexEntry(Version(5, 1, 2), 0, 3, 99, 1, 32, 100, 10, 65536, 7,
                           fmt.encode_meta("raw", 99, {"a": "b"}), b"0123456789")
    raw = bytearray(fmt.encode_index_entry(entry))
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(fmt.CorruptRecord):
        fmt.decode_index_entry(bytes(raw))


def test_segment_header():
    raw = fmt.encode_segment_header(77, fmt.SEGMENT_KIND_SINGLE)
    assert fmt.decode_segment_header(raw) == (77, fmt.SEGMENT_KIND_SINGLE)
    with pytest.raises(fmt.CorruptRecord):
        fmt.decode_segment_header(raw[:8] + b"\x02" + raw[9:])
