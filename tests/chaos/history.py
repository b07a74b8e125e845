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
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import threading
import time
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
