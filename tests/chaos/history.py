"""The history of a chaos run: self-describing values and a JSON-lines recorder.

Every client call is two lines: an ``invoke`` before the call and an outcome after it
(``ok``, ``fail`` for a definite failure, ``info`` for an indeterminate one: Unavailable,
Timeout), linked by ``id``. The nemesis writes ``nemesis`` lines for every fault it
injects and heals. Times are ``time.monotonic()`` seconds, so they order events within
one run; they mean nothing across runs.

A value names itself: its first line is JSON ``{"key", "writer", "seq", "size",
"sha256"}`` (sha256 of the body that follows), so a reader can verify any value it is
handed without trusting the server, and the checker can find the write it came from.
The history records the sha256 of the whole value too, so "the bytes of write
(writer, seq)" is pinned by the history and not only by the value itself.

A large value (``LargeValue``, 1-8 MiB, streamed) has the same head line, with a
``seed`` too, and a body computed block by block from (key, seed): the put's history
line records the seed, so the checker can recompute any byte range a range read
returned without trusting the server, and without keeping the value anywhere.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OK, FAIL, INFO, INVOKE, NEMESIS = "ok", "fail", "info", "invoke", "nemesis"


def make_value(key: str, writer: str, seq: int, size: int, rng: random.Random
               ) -> tuple[bytes, dict[str, Any]]:
    """A value for ``key`` by ``writer``'s ``seq``-th write; returns (bytes, its description)."""
    body = rng.randbytes(size)
    head = {"key": key, "writer": writer, "seq": seq, "size": size,
            "sha256": hashlib.sha256(body).hexdigest()}
    raw = json.dumps(head, sort_keys=True).encode() + b"\n" + body
    return raw, describe(raw)


LARGE_BLOCK = 64 * 1024  # a large value's body is computed in blocks of this size


@dataclass(frozen=True)
class LargeValue:
    """A large value that is computed, never stored: ``head()`` (the JSON line every value
    starts with) then ``size`` body bytes, block ``i`` of which is
    ``shake_256(f"{key}|{seed}|{i}")``. ``body_sha256`` goes into the head, so
    ``describe`` checks a large value like any other."""

    key: str
    writer: str
    seq: int
    size: int
    seed: int
    body_sha256: str

    @classmethod
    def create(cls, key: str, writer: str, seq: int, size: int, seed: int) -> LargeValue:
        body = hashlib.sha256()
        for i in range(0, size, LARGE_BLOCK):
            body.update(cls._block(key, seed, i // LARGE_BLOCK, min(LARGE_BLOCK, size - i)))
        return cls(key, writer, seq, size, seed, body.hexdigest())

    @classmethod
    def from_description(cls, desc: dict[str, Any]) -> LargeValue | None:
        """The value a put's recorded description (``description()``) stands for."""
        large = desc.get("large")
        if not isinstance(large, dict):
            return None
        return cls(desc["key"], desc["writer"], desc["seq"], large["size"], large["seed"],
                   large["body_sha256"])

    @staticmethod
    def _block(key: str, seed: int, index: int, length: int) -> bytes:
        return hashlib.shake_256(f"{key}|{seed}|{index}".encode()).digest(length)

    def head(self) -> bytes:
        head = {"key": self.key, "writer": self.writer, "seq": self.seq, "size": self.size,
                "sha256": self.body_sha256, "seed": self.seed}
        return json.dumps(head, sort_keys=True).encode() + b"\n"

    def __len__(self) -> int:
        return len(self.head()) + self.size

    def chunks(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``[start, end)`` of the value, in pieces of at most a block."""
        head = self.head()
        end = len(head) + self.size if end is None else min(end, len(head) + self.size)
        if start < len(head):
            yield head[start:end]
        first = max(start - len(head), 0) // LARGE_BLOCK
        for index in range(first, (self.size + LARGE_BLOCK - 1) // LARGE_BLOCK):
            lo = len(head) + index * LARGE_BLOCK
            if lo >= end:
                break
            block = self._block(self.key, self.seed, index,
                                min(LARGE_BLOCK, self.size - index * LARGE_BLOCK))
            yield block[max(start - lo, 0): end - lo]

    def description(self) -> dict[str, Any]:
        """What a put records: as ``describe`` of the whole value, plus how to recompute it."""
        whole = hashlib.sha256()
        for chunk in self.chunks():
            whole.update(chunk)
        return {"sha256": whole.hexdigest(), "len": len(self), "key": self.key,
                "writer": self.writer, "seq": self.seq, "self_ok": True,
                "large": {"seed": self.seed, "size": self.size,
                          "body_sha256": self.body_sha256}}


@functools.lru_cache(maxsize=1 << 16)
def range_sha256(value: LargeValue, start: int, end: int | None) -> str | None:
    """The sha256 of what a range read ``[start, end)`` of ``value`` must return (``end``
    past the size is clamped, None is the size), or None if the range is invalid."""
    if start > len(value) or (end is not None and end < start):
        return None
    digest = hashlib.sha256()
    for chunk in value.chunks(start, end):
        digest.update(chunk)
    return digest.hexdigest()


def describe_range(start: int, data: bytes) -> dict[str, Any]:
    """What a range read records of the bytes it got."""
    return {"start": start, "len": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def describe_chunks(chunks: Iterable[bytes]) -> dict[str, Any]:
    """``describe`` of a value read in pieces (a downloaded file), in bounded memory."""
    whole, body = hashlib.sha256(), hashlib.sha256()
    head_bytes, length, in_head = b"", 0, True
    for chunk in chunks:
        whole.update(chunk)
        length += len(chunk)
        if in_head:
            head_bytes += chunk
            cut = head_bytes.find(b"\n")
            if cut < 0 and len(head_bytes) < 1 << 16:
                continue
            in_head = False
            if cut >= 0:
                body.update(head_bytes[cut + 1:])
                head_bytes = head_bytes[:cut]
            else:
                head_bytes = b""
        else:
            body.update(chunk)
    described: dict[str, Any] = {"sha256": whole.hexdigest(), "len": length}
    try:
        head = json.loads(head_bytes) if head_bytes and not in_head else None
    except ValueError:
        head = None
    if not isinstance(head, dict):
        return {**described, "self_ok": False}
    body_len = length - len(head_bytes) - 1
    ok = head.get("size") == body_len and head.get("sha256") == body.hexdigest()
    return {**described, "key": head.get("key"), "writer": head.get("writer"),
            "seq": head.get("seq"), "self_ok": ok}


def describe(raw: bytes) -> dict[str, Any]:
    """What a value says about itself, checked: ``self_ok`` is False if it lies or is torn."""
    described: dict[str, Any] = {"sha256": hashlib.sha256(raw).hexdigest(), "len": len(raw)}
    head_bytes, sep, body = raw.partition(b"\n")
    try:
        head = json.loads(head_bytes) if sep else None
    except ValueError:
        head = None
    if not isinstance(head, dict):
        return {**described, "self_ok": False}
    ok = head.get("size") == len(body) and head.get("sha256") == hashlib.sha256(
        body).hexdigest()
    return {**described, "key": head.get("key"), "writer": head.get("writer"),
            "seq": head.get("seq"), "self_ok": ok}


class History:
    """A thread-safe JSON-lines recorder; every line is flushed as it is written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def _write(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, sort_keys=True)
        with self._lock:
            self._file.write(line + "\n")

    def invoke(self, process: str, f: str, key: str, **fields: Any) -> int:
        op_id = next(self._ids)
        self._write({"id": op_id, "type": INVOKE, "t": time.monotonic(), "process": process,
                     "f": f, "key": key, **fields})
        return op_id

    def complete(self, op_id: int, outcome: str, **fields: Any) -> None:
        assert outcome in (OK, FAIL, INFO), outcome
        self._write({"id": op_id, "type": outcome, "t": time.monotonic(), **fields})

    def nemesis(self, **fields: Any) -> None:
        self._write({"type": NEMESIS, "t": time.monotonic(), **fields})

    def mark(self, **fields: Any) -> None:
        """A note in the history (round boundaries, phases); the checker ignores it."""
        self._write({"type": "mark", "t": time.monotonic(), **fields})

    def close(self) -> None:
        with self._lock:
            self._file.close()


def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class Tail:
    """A history file read incrementally: ``entries`` holds every line so far, and
    ``update`` parses only what was appended since the last call (a long run reads its
    history after every round; parsing it whole each time would grow quadratically)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[dict[str, Any]] = []
        self._offset = 0

    def update(self) -> list[dict[str, Any]]:
        """Parse the complete lines appended since the last call; returns them."""
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line being written waits
        self._offset += len(complete)
        new = [json.loads(line) for line in complete.splitlines() if line.strip()]
        self.entries += new
        return new
