"""Check a chaos history against the claims of docs/consistency.md.

Operations are rebuilt from the history's invoke/outcome pairs. An operation whose
outcome is ``info`` (Unavailable, Timeout) or missing is indeterminate: it may or may not
have happened, at any time after its invoke (Jepsen's rule), so it never rules anything
out. The rules, each a violation kind:

- ``corrupt-read``: a read returned bytes that fail their own hash, name another key, or
  differ from the bytes the history says their write sent.
- ``never-written``: a read returned a value no put on that key had invoked by the time
  the read returned.
- ``failed-write-visible``: a read returned the value of a put that failed definitely
  (InvalidArgument, IntegrityError, ...): such a write stored nothing.
- ``lost-write``: a read that started after a put (or delete) was acknowledged returned
  an older version, or nothing although no delete can explain it: "read your writes and
  everyone else's" (versions order writes; the newest acknowledged before the read
  started is the floor).
- ``resurrection``: as ``lost-write``, where the newest acknowledged operation was a
  delete and the read returned an older put's value: a deleted key came back without a
  later put.

Range reads (``get-range``, of large values) return bytes that do not describe
themselves; the checker recomputes the asked range of every put on the key from the
seed the put recorded (``history.LargeValue``) and compares hashes: no put whose range
matches is ``corrupt-read`` (wrong, shifted, short or long bytes), and otherwise the
rules above apply to the put that matched (``never-written``, ``failed-write-visible``,
``lost-write`` by version when the read returned one, and for a read that found
nothing).

The final reads after healing and repair are ordinary reads in the history, so the same
rules make "every acknowledged write is readable (or superseded)" a check of the final
state. Replica convergence is checked by the runner (it needs the live cluster).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from .history import FAIL, INFO, INVOKE, NEMESIS, OK, LargeValue, range_sha256

FIRST_VIOLATIONS = 10  # how many a report prints in full


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    if not text:
        return None
    p, lg, n = text.split(".")
    return int(p), int(lg), int(n)


@dataclass
class Op:
    id: int
    process: str
    f: str  # put, get, delete
    key: str
    start: float
    value: dict[str, Any] | None = None  # put: what was sent; get: what came back
    outcome: str | None = None  # ok, fail, info; None: never completed
    end: float = math.inf  # when it completed (ok or fail)
    version: tuple[int, int, int] | None = None
    found: bool | None = None  # get: whether a value came back
    error: str | None = None
    byte_range: tuple[int, int | None] | None = None  # get-range: [start, end) asked for

    @property
    def acked(self) -> bool:
        return self.outcome == OK

    def __str__(self) -> str:
        what = self.f
        if self.value and self.f == "put":
            what += f" {self.value.get('writer')}#{self.value.get('seq')}"
        if self.byte_range is not None:
            what += f" [{self.byte_range[0]}:{self.byte_range[1]}]"
        if self.f == "get" and self.acked:
            what += (f" -> {self.value.get('writer')}#{self.value.get('seq')}"
                     if self.found and self.value else " -> not found")
        if self.f == "get-range" and self.acked:
            what += (f" -> {self.value.get('len')} bytes" if self.found and self.value
                     else " -> not found")
        v = ".".join(map(str, self.version)) if self.version else "-"
        end = f"{self.end:.3f}" if self.end != math.inf else "?"
        tail = f" ({self.error})" if self.error else ""
        return (f"[{self.id} {self.process}] {what} {self.key} {self.start:.3f}..{end} "
                f"{self.outcome} v={v}{tail}")


@dataclass
class Violation:
    kind: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.key}: {self.message}"


@dataclass
class Report:
    violations: list[Violation] = field(default_factory=list)
    ops: Counter[str] = field(default_factory=Counter)  # "put ok", "get info", ...
    faults: Counter[str] = field(default_factory=Counter)  # injected, by kind
    errors: Counter[str] = field(default_factory=Counter)  # error classes seen

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        kinds = Counter(v.kind for v in self.violations)
        return (f"operations {sum(self.ops.values())} ({dict(sorted(self.ops.items()))}); "
                f"faults {dict(sorted(self.faults.items()))}; "
                f"errors {dict(sorted(self.errors.items()))}; "
                f"violations {sum(kinds.values())} {dict(sorted(kinds.items()))}")


def build_ops(entries: list[dict[str, Any]]) -> list[Op]:
    ops: dict[int, Op] = {}
    for e in entries:
        kind = e["type"]
        if kind == INVOKE:
            ops[e["id"]] = Op(e["id"], e["process"], e["f"], e["key"], e["t"],
                              value=e.get("value"))
            if e["f"] == "get-range":
                ops[e["id"]].byte_range = (e["start"], e.get("end"))
        elif kind in (OK, FAIL, INFO):
            op = ops[e["id"]]
            op.outcome = kind
            op.error = e.get("error")
            if kind != INFO:
                op.end = e["t"]
            op.version = parse_version(e.get("version"))
            if op.f in ("get", "get-range") and kind == OK:
                op.found = bool(e.get("found"))
                op.value = e.get("value")
    return list(ops.values())


class _KeyHistory:
    """The writes of one key, indexed for "newest acknowledged before time t"."""

    def __init__(self, writes: list[Op]) -> None:
        acked = sorted((w for w in writes if w.acked and w.version), key=lambda w: w.end)
        self.ends = [w.end for w in acked]
        self.newest: list[Op] = []  # newest[i]: the newest version among acked[: i + 1]
        for w in acked:
            prev = self.newest[-1] if self.newest else None
            assert w.version is not None
            self.newest.append(w if prev is None or prev.version is None
                               or w.version > prev.version else prev)
        self.by_tag = {(w.value["writer"], w.value["seq"]): w for w in writes
                       if w.f == "put" and w.value}
        self.deletes = [w for w in writes if w.f == "delete"]
        self.puts = [w for w in writes if w.f == "put"]

    def floor(self, t: float) -> Op | None:
        """The newest acknowledged write or delete that completed before ``t``."""
        i = bisect.bisect_left(self.ends, t)
        return self.newest[i - 1] if i else None


def check_read(r: Op, h: _KeyHistory) -> Violation | None:
    floor = h.floor(r.start)
    if r.found:
        v = r.value or {}
        w = h.by_tag.get((v.get("writer"), v.get("seq")))
        if not v.get("self_ok") or v.get("key") != r.key:
            return Violation("corrupt-read", r.key, f"{r} returned bytes that fail their "
                             f"own description: {v}")
        if w is None or w.start > r.end:
            return Violation("never-written", r.key, f"{r} returned a value no put had "
                             f"invoked: {v}")
        if (w.value or {}).get("sha256") != v.get("sha256"):
            return Violation("corrupt-read", r.key, f"{r} returned bytes other than "
                             f"{w} sent")
        if w.outcome == FAIL:
            return Violation("failed-write-visible", r.key, f"{r} returned the value of "
                             f"{w}, which failed definitely")
        if floor is not None and r.version is not None and floor.version is not None \
                and r.version < floor.version:
            kind = "resurrection" if floor.f == "delete" else "lost-write"
            return Violation(kind, r.key, f"{r} is older than {floor}, acknowledged before "
                             f"the read started")
        return None
    if floor is None or floor.f == "delete":
        return None
    assert floor.version is not None
    for d in h.deletes:
        if d.start > r.end:
            continue
        if not d.acked and d.outcome != FAIL:
            return None  # an indeterminate delete may explain it
        if d.acked and d.version is not None and d.version > floor.version:
            return None
    return Violation("lost-write", r.key, f"{r} found nothing, but {floor} was acknowledged "
                     f"before the read started and no delete explains it")


def _range_matches(w: Op, r: Op) -> bool:
    """Whether ``r`` returned exactly the asked range of the bytes ``w`` sent."""
    large = LargeValue.from_description(w.value or {}) if w.value else None
    if large is None or r.byte_range is None:
        return False
    expected = range_sha256(large, *r.byte_range)
    return expected is not None and expected == (r.value or {}).get("sha256")


def check_range_read(r: Op, h: _KeyHistory) -> Violation | None:
    if not r.found:
        return check_read(r, h)  # found nothing: the same lost-write rule as a get
    invoked = [w for w in h.puts if w.start <= r.end]
    if not invoked:
        return Violation("never-written", r.key, f"{r} returned bytes, but no put on the "
                         "key had been invoked")
    w = next((w for w in invoked if _range_matches(w, r)), None)
    if w is None:
        return Violation("corrupt-read", r.key, f"{r} returned bytes other than that range "
                         f"of any put ({len(invoked)} invoked): {r.value}")
    if w.outcome == FAIL:
        return Violation("failed-write-visible", r.key, f"{r} returned bytes of {w}, which "
                         "failed definitely")
    floor = h.floor(r.start)
    if floor is not None and r.version is not None and floor.version is not None \
            and r.version < floor.version:
        kind = "resurrection" if floor.f == "delete" else "lost-write"
        return Violation(kind, r.key, f"{r} is older than {floor}, acknowledged before "
                         "the read started")
    return None


def check(entries: list[dict[str, Any]], reads_from: float = -math.inf) -> Report:
    """Judge a history. Only reads invoked at or after ``reads_from`` are checked (each
    against every write of the whole history): a long run checks each round's new
    reads, and the whole history once at the end; the counts cover every entry."""
    report = Report()
    for e in entries:
        if e["type"] == NEMESIS and e.get("action") == "inject":
            report.faults[e["fault"]] += 1
    ops = build_ops(entries)
    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        report.ops[f"{op.f} {op.outcome or 'pending'}"] += 1
        if op.error:
            report.errors[op.error.split(":", 1)[0]] += 1
        by_key[op.key].append(op)
        if op.f == "put" and op.acked and op.value and op.value.get("bad_checksum"):
            report.violations.append(Violation(
                "bad-checksum-accepted", op.key, f"{op} sent a wrong checksum and was "
                "acknowledged"))
    for _key, key_ops in sorted(by_key.items()):
        h = _KeyHistory([o for o in key_ops if o.f in ("put", "delete")])
        for r in key_ops:
            if r.f in ("get", "get-range") and r.acked and r.start >= reads_from:
                found = check_read(r, h) if r.f == "get" else check_range_read(r, h)
                if found:
                    report.violations.append(found)
    return report


def format_failure(seed: int, report: Report, faults: list[dict[str, Any]],
                   history: str) -> str:
    lines = [f"CHAOS RUN FAILED: seed {seed}", f"history kept at {history}",
             report.summary(), f"faults injected ({len(faults)}):"]
    lines += [f"  {f}" for f in faults]
    lines.append(f"first violations ({min(len(report.violations), FIRST_VIOLATIONS)} of "
                 f"{len(report.violations)}):")
    lines += [f"  {v}" for v in report.violations[:FIRST_VIOLATIONS]]
    return "\n".join(lines)
