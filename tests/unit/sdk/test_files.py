"""cairn._files: bounded upload reads; downloads that reach the target only on commit."""

from __future__ import annotations

import io
import os

import pytest

from cairn._files import AsyncFileSink, AsyncFileSource, FileSink, FileSource
from cairn.errors import InvalidArgument

pytestmark = pytest.mark.unit


def test_source_from_a_path_is_sized_and_rewindable(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abcdef")
    source = FileSource.open(path)
    assert source.size == 6 and source.rewindable
    assert source.read(4) == b"abcd"
    assert source.read(4) == b"ef"
    assert source.read(4) == b""
    source.rewind()
    assert source.read(100) == b"abcdef"
    source.close()


def test_source_reads_a_file_object_from_its_position_and_not_past_its_size():
    buf = io.BytesIO(b"0123456789")
    buf.seek(4)
    source = FileSource(buf)
    assert source.size == 6
    buf.seek(0, os.SEEK_END)
    buf.write(b"grown")  # grew after it was measured: the upload keeps to 6 bytes
    buf.seek(4)
    assert source.read(100) == b"456789"
    assert source.read(100) == b""
    source.rewind()
    assert buf.tell() == 4
    source.close()
    assert not buf.closed  # not ours to close


class Pipe(io.RawIOBase):
    """A readable stream that cannot seek."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        out, self._data = self._data[:n], self._data[n:]
        return out


def test_source_that_cannot_seek_has_no_size():
    source = FileSource(Pipe(b"abc"))
    assert source.size is None and not source.rewindable
    assert source.read(2) == b"ab"


def test_source_refuses_text_and_non_files(tmp_path):
    with pytest.raises(InvalidArgument, match="binary"):
        FileSource(io.StringIO("x"))
    with pytest.raises(InvalidArgument):
        FileSource(42)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        FileSource(tmp_path / "missing")


def test_sink_to_a_path_renames_only_on_commit(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    sink = FileSink.open(target)
    sink.write(b"new ")
    sink.write(b"bytes")
    assert target.read_bytes() == b"old"
    parts = [p for p in tmp_path.iterdir() if p.name.endswith(".cairn-part")]
    assert len(parts) == 1 and parts[0].name.startswith(".out.bin.")
    sink.commit()
    assert target.read_bytes() == b"new bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_sink_discard_leaves_the_target_alone(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    sink = FileSink(target)
    sink.write(b"bad")
    sink.discard()
    sink.discard()
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_sink_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        sink = FileSink(tmp_path / "f")
        sink.commit()
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


def test_sink_to_a_file_object_writes_it_only_on_commit():
    target = io.BytesIO()
    sink = FileSink(target)
    sink.write(b"abc")
    assert target.getvalue() == b""
    sink.commit()
    assert target.getvalue() == b"abc"
    target = io.BytesIO()
    sink = FileSink(target)
    sink.write(b"abc")
    sink.discard()
    assert target.getvalue() == b""


def test_sink_refuses_text_targets():
    with pytest.raises(InvalidArgument, match="binary"):
        FileSink(io.StringIO())


async def test_async_twins(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    source = await AsyncFileSource.open(path)
    assert source.size == 3 and source.rewindable
    assert await source.read(2) == b"ab"
    await source.rewind()
    assert await source.read() == b"abc"
    await source.close()
    sink = await AsyncFileSink.open(tmp_path / "g")
    await sink.write(b"xyz")
    await sink.commit()
    assert (tmp_path / "g").read_bytes() == b"xyz"
