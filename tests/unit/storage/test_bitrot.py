"""Flip bytes in segment files and in inline values: never served, and scrub finds exactly them."""

from __future__ import annotations

import os
import random

import pytest

from cairn.errors import IntegrityError
from cairn.node.storage import format as fmt
from cairn.types import Version

pytestmark = pytest.mark.unit

V = Version(1000, 0, 1)


def _segment_path(disk_dir, segment_id):
    return os.path.join(disk_dir, "segments", f"{segment_id:016x}.seg")


def _flip(path, offset, rng):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ (1 << rng.randrange(8))]))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_flipped_bytes_are_never_served_and_scrub_reports_exactly_them(make_engine, seed):
    rng = random.Random(seed)
    engine = make_engine(inline_max_bytes=2048, large_object_bytes=1 << 20,
                         segment_max_bytes=4 << 20)
    disk_dir = engine.config.disks[0]
    engine.create_bucket("app")
    values = {}
    for i in range(120):
        size = rng.choice([10, 500, 2000, 30_000, 200_000, 1_500_000])
        values[b"obj-%03d" % i] = rng.randbytes(size)
        engine.put("app", b"obj-%03d" % i, values[b"obj-%03d" % i], version=V)
    entries = {k: engine.disks[0].lookup(fmt.object_key(b"app", k)) for k in values}
    engine.close()

    in_segments = rng.sample(sorted(values), 15)
    for key in in_segments:
        e = entries[key]
        _flip(_segment_path(disk_dir, e.segment_id), e.offset + rng.randrange(e.record_len), rng)
    inline_keys = [k for k in sorted(values) if entries[k].inline is not None
                   and k not in in_segments and len(values[k]) >= 100]
    in_index = rng.sample(inline_keys, 5)
    mdb = os.path.join(disk_dir, "index", "data.mdb")
    with open(mdb, "rb") as f:
        data = bytearray(f.read())
    for key in in_index:
        value, start = values[key], 0
        while (pos := data.find(value, start)) >= 0:  # every copy, live and stale pages
            data[pos + rng.randrange(len(value))] ^= 0x10
            start = pos + len(value)
    with open(mdb, "r+b") as f:
        f.write(data)

    engine = make_engine(inline_max_bytes=2048, large_object_bytes=1 << 20,
                         segment_max_bytes=4 << 20)
    for key, value in values.items():
        inline_served = entries[key].inline is not None and key not in in_index
        if key in in_index or (key in in_segments and not inline_served):
            with pytest.raises(IntegrityError):
                engine.get("app", key).read()
        else:
            # An inline copy is whole even if its segment copy rotted (scrub still says so).
            assert engine.get("app", key).read() == value

    report = engine.scrub()[0]
    assert sorted(d.key for d in report.damaged) == sorted(in_segments + in_index)
    assert report.records_checked >= len(values) - len(in_index)
    again = engine.scrub()[0]
    assert sorted(d.key for d in again.damaged) == sorted(in_segments + in_index)


def test_flip_in_large_object_is_caught_in_its_block_only(make_engine):
    engine = make_engine(large_object_bytes=1 << 20)
    engine.create_bucket("app")
    value = os.urandom(5 << 20)
    engine.put_stream("app", b"big", [value[i:i + 1 << 20] for i in range(0, len(value), 1 << 20)],
                      version=V)
    e = engine.disks[0].lookup(fmt.object_key(b"app", b"big"))
    header_len = fmt.RECORD_HEADER_SIZE + len(b"app") + len(b"big") + len(e.meta)
    flip_at = 3 * (1 << 20) + 12345
    with open(_segment_path(engine.config.disks[0], e.segment_id), "r+b") as f:
        f.seek(e.offset + header_len + flip_at)
        b = f.read(1)
        f.seek(e.offset + header_len + flip_at)
        f.write(bytes([b[0] ^ 1]))
    # Ranges away from the damaged block still verify and are served.
    assert engine.get("app", b"big", start=0, end=1 << 20).read() == value[: 1 << 20]
    got: list[bytes] = []
    with pytest.raises(IntegrityError):
        got.extend(engine.get("app", b"big"))  # keeps what came before the error
    got = b"".join(got)
    assert len(got) <= flip_at, "no byte of the damaged block was handed out"
    assert got == value[: len(got)]
    with pytest.raises(IntegrityError, match="damaged"):
        engine.get("app", b"big")
