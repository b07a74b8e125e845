"""Shared by the storage crash tests: self-describing values, the writer process, the model.

The writer runs as its own process (``python -m tests.chaos.storage.workload MODE ...``)
so the test can SIGKILL it at any moment. It reports on stdout, one line per event, each
written with a single ``os.write`` (atomic on a pipe for lines under PIPE_BUF):

    READY                                  the engine is open
    I P <key> <version> <size>             about to put (intent)
    I D <key> <version>                    about to delete (intent)
    A P <key> <version> <sha256> <applied> the put returned: it is durable (ack)
    A D <key> <version> <applied>          the delete returned: it is durable (ack)
    COMPACT / COMPACTED <s> <moved> <dropped>   around ``Engine.compact``
    DONE                                   a bounded run finished
    E <what>                               the writer hit an error (the test fails)

Every value names its key, version and size in a header line and the rest is
pseudo-random bytes derived from that header, so the checker can tell whether any bytes
served are exactly some value the writer attempted (``expected_sha``).

``Model`` folds these lines into what a reopened engine may serve: for each key the
newest acknowledged (or already observed) state, plus the attempted writes newer than it
that may or may not have become durable before the kill.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cairn.errors import NotFound
from cairn.node.storage import Engine, EngineConfig
from cairn.types import Version

MiB = 1024 * 1024
KiB = 1024
BUCKET = "chaos"
NODE_ID = 7
CHUNK_BYTES = MiB
ROOT = Path(__file__).resolve().parents[3]

# ----------------------------------------------------------------------------- values


def value_header(key: bytes, version: Version, size: int) -> bytes:
    return b"cairn-chaos %s %s %d\n" % (key, str(version).encode(), size)


def value_size(key: bytes, version: Version, size: int) -> int:
    """The size actually used: at least the header (values are self-describing)."""
    return max(size, len(value_header(key, version, 10**12)))


def value_chunks(key: bytes, version: Version, size: int) -> Iterator[bytes]:
    """The value of ``key`` at ``version``, ``size`` bytes, in chunks of CHUNK_BYTES."""
    head = value_header(key, version, size)
    assert size >= len(head), "use value_size()"
    rng = random.Random(hashlib.blake2b(head, digest_size=8).digest())
    first = min(size, CHUNK_BYTES)
    yield head + rng.randbytes(first - len(head))
    left = size - first
    while left:
        n = min(left, CHUNK_BYTES)
        yield rng.randbytes(n)
        left -= n


def value_bytes(key: bytes, version: Version, size: int) -> bytes:
    return b"".join(value_chunks(key, version, size))


def expected_sha(key: bytes, version: Version, size: int) -> str:
    h = hashlib.sha256()
    for chunk in value_chunks(key, version, size):
        h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- configs


def crash_config(path: str | Path) -> EngineConfig:
    """Engine settings of the crash test (writer and checker must agree)."""
    return EngineConfig(
        disks=(str(path),), min_free_bytes=0, segment_max_bytes=2 * MiB,
        large_object_bytes=MiB,
    )


def compaction_config(path: str | Path) -> EngineConfig:
    """Small segments so overwrites leave many sparse ones; tombstones purge at once."""
    return EngineConfig(
        disks=(str(path),), min_free_bytes=0, segment_max_bytes=MiB,
        large_object_bytes=512 * KiB, tombstone_grace_s=0.0,
    )


CONFIGS = {"crash": crash_config, "compaction": compaction_config}

# ----------------------------------------------------------------------------- the writer


def emit(line: str) -> None:
    os.write(1, (line + "\n").encode())


class Writer:
    """Drives an open engine and reports every intent and acknowledgement on stdout."""

    def __init__(self, engine: Engine, round_no: int, seed: int) -> None:
        self.engine = engine
        self.physical_ms = round_no + 1  # every round's versions beat the earlier rounds'
        self.seed = seed
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self.failed = threading.Event()

    def version(self) -> Version:
        with self._lock:
            return Version(self.physical_ms, next(self._seq), NODE_ID)

    def fail(self, what: str) -> None:
        self.failed.set()
        emit("E " + what.replace("\n", " | ")[:3000])
        traceback.print_exc(file=sys.stderr)

    def put(self, key: bytes, size: int) -> None:
        v = self.version()
        size = value_size(key, v, size)
        value = value_bytes(key, v, size)
        sha = hashlib.sha256(value).hexdigest()
        emit(f"I P {key.decode()} {v} {size}")
        result = self.engine.put(BUCKET, key, value, version=v)
        emit(f"A P {key.decode()} {v} {sha} {int(result.applied)}")

    def put_stream(self, key: bytes, size: int) -> None:
        v = self.version()
        size = value_size(key, v, size)
        h = hashlib.sha256()

        def chunks() -> Iterator[bytes]:
            for chunk in value_chunks(key, v, size):
                h.update(chunk)
                yield chunk

        emit(f"I P {key.decode()} {v} {size}")
        result = self.engine.put_stream(BUCKET, key, chunks(), version=v, size=size)
        emit(f"A P {key.decode()} {v} {h.hexdigest()} {int(result.applied)}")

    def delete(self, key: bytes) -> None:
        v = self.version()
        emit(f"I D {key.decode()} {v}")
        result = self.engine.delete(BUCKET, key, version=v)
        emit(f"A D {key.decode()} {v} {int(result.applied)}")

    def pipeline(self, items: list[tuple[bytes, int]]) -> None:
        """Several ``submit_put`` in flight at once; each is acknowledged as it resolves."""
        futures = []
        for key, size in items:
            v = self.version()
            size = value_size(key, v, size)
            value = value_bytes(key, v, size)
            sha = hashlib.sha256(value).hexdigest()
            emit(f"I P {key.decode()} {v} {size}")
            future = self.engine.submit_put(BUCKET, key, value, version=v)

            def done(f, key=key, v=v, sha=sha):  # type: ignore[no-untyped-def]
                if f.exception() is not None:
                    self.fail(f"submit_put {key!r} {v}: {f.exception()!r}")
                else:
                    emit(f"A P {key.decode()} {v} {sha} {int(f.result().applied)}")

            future.add_done_callback(done)
            futures.append(future)
        for future in futures:
            future.exception()  # wait; the callback reports


def small_size(rng: random.Random) -> int:
    """100 B .. 200 KiB, log-uniform (most values are small, a few are big)."""
    return int(math.exp(rng.uniform(math.log(100), math.log(200 * KiB))))


def crash_worker(w: Writer, tid: int, keys: int, big_keys: int, streams: threading.Semaphore
                 ) -> None:
    rng = random.Random(f"{w.seed}/{w.physical_ms}/{tid}")
    try:
        while not w.failed.is_set():
            roll = rng.random()
            if roll < 0.03 and streams.acquire(blocking=False):
                w.put_stream(b"big%d" % rng.randrange(big_keys), 10 * MiB + rng.randrange(KiB))
            elif roll < 0.15:
                w.delete(b"k%03d" % rng.randrange(keys))
            elif roll < 0.35:
                w.pipeline([(b"k%03d" % rng.randrange(keys), small_size(rng))
                            for _ in range(rng.randint(4, 16))])
            else:
                w.put(b"k%03d" % rng.randrange(keys), small_size(rng))
    except Exception as exc:
        w.fail(f"worker {tid}: {exc!r}")


def run_crash(engine: Engine, args: argparse.Namespace) -> None:
    """Write until killed: puts, pipelined puts, a few 10 MiB streams, deletes."""
    w = Writer(engine, args.round, args.seed)
    streams = threading.Semaphore(args.streams)
    threads = [
        threading.Thread(target=crash_worker, args=(w, t, args.keys, args.big_keys, streams),
                         daemon=True)
        for t in range(args.threads)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def churn(w: Writer, rng: random.Random, keys: list[bytes], overwrite: float, delete: float
          ) -> None:
    """Overwrite a share of ``keys`` (pipelined) and delete another share."""
    picked = rng.sample(keys, int(len(keys) * (overwrite + delete)))
    cut = int(len(keys) * overwrite)
    puts, deletes = picked[:cut], picked[cut:]
    for i in range(0, len(puts), 32):
        w.pipeline([(k, rng.randint(2 * KiB, 24 * KiB)) for k in puts[i : i + 32]])
    for k in deletes:
        w.delete(k)


def run_compaction(engine: Engine, args: argparse.Namespace) -> None:
    """Churn (so segments fall below the live ratio), compact, then write on until killed."""
    w = Writer(engine, args.round, args.seed)
    rng = random.Random(f"{args.seed}/{args.round}")
    keys = [b"k%04d" % i for i in range(args.keys)]
    churn(w, rng, keys, overwrite=0.6, delete=0.1)
    emit("COMPACT")
    started = time.monotonic()
    reports = engine.compact()
    moved = sum(r.records_moved for r in reports)
    dropped = sum(r.segments_dropped for r in reports)
    errors = [e for r in reports for e in r.errors]
    if errors:
        w.fail(f"compaction reported errors: {errors}")
    emit(f"COMPACTED {time.monotonic() - started:.4f} {moved} {dropped}")
    while True:
        w.put(rng.choice(keys), rng.randint(2 * KiB, 24 * KiB))


def run_race(engine: Engine, args: argparse.Namespace) -> None:
    """Compact in a loop while threads overwrite keys, for ``--seconds``; then DONE."""
    w = Writer(engine, args.round, args.seed)
    keys = [b"k%04d" % i for i in range(args.keys)]
    stop = threading.Event()

    def writer(tid: int) -> None:
        rng = random.Random(f"{args.seed}/race/{tid}")
        try:
            while not stop.is_set() and not w.failed.is_set():
                if rng.random() < 0.5:
                    w.put(rng.choice(keys), rng.randint(2 * KiB, 24 * KiB))
                else:
                    w.pipeline([(rng.choice(keys), rng.randint(2 * KiB, 24 * KiB))
                                for _ in range(8)])
        except Exception as exc:
            w.fail(f"race writer {tid}: {exc!r}")

    threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + args.seconds
    passes = 0
    while time.monotonic() < deadline and not w.failed.is_set():
        emit("COMPACT")
        reports = engine.compact()
        passes += 1
        emit(f"COMPACTED 0 {sum(r.records_moved for r in reports)} "
             f"{sum(r.segments_dropped for r in reports)}")
    stop.set()
    for t in threads:
        t.join()
    emit(f"DONE {passes}")


MODES = {"crash": run_crash, "compaction": run_compaction, "race": run_race}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", choices=sorted(MODES))
    p.add_argument("--dir", required=True)
    p.add_argument("--config", choices=sorted(CONFIGS), required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--round", type=int, default=0)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--keys", type=int, default=150)
    p.add_argument("--big-keys", type=int, default=3)
    p.add_argument("--streams", type=int, default=2, help="10 MiB streams per run, at most")
    p.add_argument("--seconds", type=float, default=5.0, help="race mode: how long")
    p.add_argument("--max-seconds", type=float, default=60.0,
                   help="hang guard: dump every thread's stack and exit after this long")
    args = p.parse_args(argv)
    import faulthandler

    # An orphan never outlives a broken test run, and a hang leaves its stacks behind.
    faulthandler.dump_traceback_later(args.max_seconds, exit=True)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    engine = Engine(CONFIGS[args.config](args.dir)).open()
    if not engine.has_bucket(BUCKET):
        emit("E the bucket is missing (the parent creates it)")
        os._exit(2)
    emit("READY")
    try:
        MODES[args.mode](engine, args)
    except Exception as exc:
        emit(f"E {args.mode}: {exc!r}")
        traceback.print_exc()
        os._exit(3)
    engine.close()
    os._exit(0)


# ----------------------------------------------------------------------------- the parent


class Child:
    """A writer process whose stdout lines are collected by a thread as they come."""

    def __init__(self, argv: list[str], stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb")  # noqa: SIM115 (closed in reap)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.chaos.storage.workload", *argv],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL,
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._cond:
                if raw.endswith(b"\n"):  # a torn last line (none expected) is dropped
                    self.lines.append(raw.decode())
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for(self, prefix: str, timeout_s: float, start: int = 0) -> bool:
        """Wait until a line starting with ``prefix`` arrived (after line ``start``)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                if any(line.startswith(prefix) for line in self.lines[start:]):
                    return True
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    return False
                self._cond.wait(left)

    def has(self, prefix: str) -> bool:
        with self._cond:
            return any(line.startswith(prefix) for line in self.lines)

    def kill(self) -> None:
        """SIGKILL (if still running), reap, and collect every line it wrote."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.reap()

    def reap(self, timeout_s: float = 20.0) -> int:
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=timeout_s)
        self._thread.join(timeout=timeout_s)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        return code

    def dump_stacks(self) -> None:
        """Ask a live child for its threads' stacks (faulthandler, on its stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(0.5)

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def errors(self) -> list[str]:
        return [line.strip() for line in self.lines if line.startswith("E ")]


@dataclass
class KeyModel:
    # The newest state known durable: acknowledged, or observed after a reopen.
    floor: tuple[Version, str] | None = None
    # Attempted writes newer than ``floor``: each may or may not have survived the kill.
    pending: dict[Version, str] = field(default_factory=dict)


@dataclass
class CheckStats:
    keys: int = 0
    puts: int = 0
    deletes: int = 0
    absent: int = 0
    bytes_read: int = 0
    unacked_survivors: int = 0


class Model:
    """What a reopened engine may serve, folded from the writer's lines."""

    def __init__(self) -> None:
        self.keys: dict[bytes, KeyModel] = {}
        self.sizes: dict[tuple[bytes, Version], int] = {}
        self.shas: dict[tuple[bytes, Version], str] = {}
        self.acks = 0

    def intend(self, kind: str, key: bytes, version: Version, size: int = 0) -> None:
        km = self.keys.setdefault(key, KeyModel())
        if kind == "P":
            self.sizes[(key, version)] = size
        if km.floor is None or version > km.floor[0]:
            km.pending[version] = kind

    def ack(self, kind: str, key: bytes, version: Version, sha: str | None = None) -> None:
        km = self.keys.setdefault(key, KeyModel())
        if sha is not None:
            self.shas[(key, version)] = sha
        self.acks += 1
        if km.floor is None or version > km.floor[0]:
            km.floor = (version, kind)
            km.pending = {v: k for v, k in km.pending.items() if v > version}

    def feed(self, lines: list[str]) -> None:
        for line in lines:
            parts = line.split()
            if not parts or parts[0] not in ("I", "A"):
                continue
            tag, kind, key, version = parts[0], parts[1], parts[2].encode(), parts[3]
            v = Version.parse(version)
            if tag == "I":
                self.intend(kind, key, v, int(parts[4]) if kind == "P" else 0)
            else:
                self.ack(kind, key, v, parts[4] if kind == "P" else None)

    def _sha(self, key: bytes, version: Version, size: int) -> str:
        sha = self.shas.get((key, version))
        if sha is None:
            sha = self.shas[(key, version)] = expected_sha(key, version, size)
        return sha

    def check(self, engine: Engine, *, pin: bool = True) -> CheckStats:
        """Check every key the writer ever touched; raise AssertionError listing problems.

        With ``pin`` (right after a reopen) whatever is observed becomes the new floor
        and unobserved attempts are forgotten: a dead writer's lost writes never come back.
        """
        problems: list[str] = []
        stats = CheckStats()
        for key in sorted(self.keys):
            km = self.keys[key]
            stats.keys += 1
            try:
                observed = self._check_key(engine, key, km, stats)
            except AssertionError as exc:
                problems.append(f"{key!r}: {exc}")
                continue
            if observed is not None and km.floor is not None and observed[0] < km.floor[0]:
                problems.append(f"{key!r}: observed {observed} older than acked {km.floor}")
            if pin:
                if observed is not None:
                    km.floor = observed
                km.pending.clear()
        listed = {info.key for info in engine.iter_objects(BUCKET, include_deleted=True)}
        unknown = sorted(listed - set(self.keys))
        if unknown:
            problems.append(f"list() shows keys never written: {unknown[:10]}")
        if problems:
            raise AssertionError(f"{len(problems)} problems: " + "; ".join(problems[:20]))
        return stats

    def _check_key(self, engine: Engine, key: bytes, km: KeyModel, stats: CheckStats
                   ) -> tuple[Version, str] | None:
        try:
            info = engine.head(BUCKET, key, include_deleted=True)
        except NotFound:
            # Never durably written, or a tombstone purged by compaction.
            assert km.floor is None or km.floor[1] == "D", f"lost acknowledged {km.floor}"
            stats.absent += 1
            return None
        state = (info.version, "D" if info.deleted else "P")
        allowed = state == km.floor or km.pending.get(info.version) == state[1]
        assert allowed, f"serves {state}, acked {km.floor}, attempted {sorted(km.pending)}"
        if state != km.floor:
            stats.unacked_survivors += 1
        if info.deleted:
            stats.deletes += 1
            try:
                engine.get(BUCKET, key).read()
            except NotFound:
                return state
            raise AssertionError("deleted object still readable")
        stats.puts += 1
        size = self.sizes.get((key, info.version), info.size)
        assert info.size == size, f"size {info.size} != written {size}"
        h = hashlib.sha256()
        head = b""
        with engine.get(BUCKET, key) as reader:
            for chunk in reader:
                if len(head) < 200:
                    head += chunk[:200]
                h.update(chunk)
                stats.bytes_read += len(chunk)
        want_head = value_header(key, info.version, size)
        assert head.startswith(want_head), f"served bytes of another value: {head[:60]!r}"
        assert h.hexdigest() == self._sha(key, info.version, size), "served wrong bytes"
        return state


def put_checked(engine: Engine, model: Model, key: bytes, version: Version, size: int) -> None:
    """An in-process put recorded in ``model`` (intent, then acknowledgement)."""
    size = value_size(key, version, size)
    value = value_bytes(key, version, size)
    model.intend("P", key, version, size)
    engine.put(BUCKET, key, value, version=version)
    model.ack("P", key, version, hashlib.sha256(value).hexdigest())


def delete_checked(engine: Engine, model: Model, key: bytes, version: Version) -> None:
    model.intend("D", key, version)
    engine.delete(BUCKET, key, version=version)
    model.ack("D", key, version)


def segment_bytes(engine: Engine) -> int:
    """Bytes of segment files on every disk (what compaction should shrink)."""
    return sum(
        entry.stat().st_size
        for disk in engine.disks
        for entry in os.scandir(Path(disk.path) / "segments")
    )


def check_segment_files(engine: Engine) -> None:
    """Right after open: every segment the index knows has its file, and no other
    segment or temp file is left behind (a crash must not leak space)."""
    for disk in engine.disks:
        seg_dir = Path(disk.path) / "segments"
        names = os.listdir(seg_dir)
        temps = [n for n in names if n.endswith(".tmp")]
        files = {int(n[: -len(".seg")], 16) for n in names if n.endswith(".seg")}
        known = {st.segment_id for st in disk.segment_states()}
        assert not temps, f"temp files left after recovery: {temps}"
        assert not known - files, f"segments missing their files: {sorted(known - files)}"
        assert not files - known, f"segment files the index does not know: {files - known}"


def scrub_clean(engine: Engine) -> None:
    damaged = [d for report in engine.scrub() for d in report.damaged]
    assert not damaged, f"scrub found damaged records: {damaged[:5]}"


if __name__ == "__main__":
    main()
