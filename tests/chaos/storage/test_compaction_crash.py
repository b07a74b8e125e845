"""Compaction under SIGKILL, and compaction racing writers and readers.

The store has small (1 MiB) segments. Each round a writer process overwrites and deletes
most keys (so older segments fall below the live ratio), prints COMPACT, compacts, and is
SIGKILLed at a random moment, mostly while compaction is copying records or dropping
segments. After every kill the engine is reopened: every key must hold its newest
acknowledged value exactly, nothing stale may be served, scrub must find nothing and no
segment file may leak. At the end a full compaction must shrink the dead bytes.

In-process FaultyFileSystem faults during compaction are in
tests/unit/storage/test_faults.py.
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from cairn.errors import IntegrityError
from cairn.node.storage import CompactionReport, Engine, FaultyFileSystem
from cairn.types import Version

from .workload import (
    BUCKET,
    KiB,
    Model,
    check_segment_files,
    compaction_config,
    delete_checked,
    put_checked,
    scrub_clean,
    segment_bytes,
    value_bytes,
)

pytestmark = [pytest.mark.chaos]

ROUNDS = 24
KEYS = 600


def fill(engine: Engine, model: Model, rng: random.Random, physical_ms: int,
         overwrite: float = 1.0, delete: float = 0.0) -> None:
    keys = [b"k%04d" % i for i in range(KEYS)]
    picked = rng.sample(keys, int(KEYS * (overwrite + delete)))
    cut = int(KEYS * overwrite)
    for logical, key in enumerate(picked[:cut], 1):
        put_checked(engine, model, key, Version(physical_ms, logical, 1),
                    rng.randint(4 * KiB, 16 * KiB))
    for logical, key in enumerate(picked[cut:], cut + 1):
        delete_checked(engine, model, key, Version(physical_ms, logical, 1))


def reopen_and_check(data, model: Model, where: str) -> None:
    with Engine(compaction_config(data)) as engine:
        try:
            check_segment_files(engine)
            model.check(engine)
            scrub_clean(engine)
        except AssertionError as exc:
            raise AssertionError(f"{where}: {exc}") from exc
        status = engine.status()[0]
        assert status.state == "ok", f"{where}: disk is {status.state}: {status.error}"


@pytest.mark.timeout(200)
def test_sigkill_during_compaction_loses_nothing(tmp_path, spawn, chaos_seed):
    rng = random.Random(chaos_seed)
    data = tmp_path / "disk"
    data.mkdir()
    model = Model()
    with Engine(compaction_config(data)) as engine:
        engine.create_bucket(BUCKET)
        fill(engine, model, rng, physical_ms=1_000_000)  # before every round's versions
    estimate_s = 0.3  # how long one compaction takes; learnt from the rounds that finish
    mid_compaction = 0
    for round_no in range(ROUNDS):
        where = f"seed {chaos_seed}, round {round_no}"
        child = spawn([
            "compaction", "--dir", str(data), "--config", "compaction", "--seed",
            str(chaos_seed), "--round", str(1_000_001 + round_no), "--keys", str(KEYS),
        ])
        assert child.wait_for("COMPACT", 60), f"{where}: no COMPACT: {child.stderr()}"
        time.sleep(rng.uniform(0.0, estimate_s * 1.2))
        child.kill()
        assert not child.errors(), f"{where}: writer failed: {child.errors()}\n{child.stderr()}"
        done = [line.split() for line in child.lines if line.startswith("COMPACTED")]
        if done:
            estimate_s = max(0.05, float(done[0][1]))
        else:
            mid_compaction += 1
        model.feed(child.lines)
        reopen_and_check(data, model, where)
    print(f"compaction crash: {mid_compaction}/{ROUNDS} kills hit a running compaction")
    assert mid_compaction >= ROUNDS // 4, "the kills missed the compactions; retune delays"

    with Engine(compaction_config(data)) as engine:
        fill(engine, model, rng, physical_ms=2_000_000, overwrite=0.6, delete=0.1)
        dead_before = sum(s.dead_bytes for s in engine.status())
        files_before = segment_bytes(engine)
        reports = engine.compact(force=True)
        assert not [e for r in reports for e in r.errors], reports
        dead_after = sum(s.dead_bytes for s in engine.status())
        files_after = segment_bytes(engine)
        model.check(engine, pin=False)
    assert dead_after < dead_before / 2, (dead_before, dead_after, reports)
    assert files_after < files_before, (files_before, files_after)
    reopen_and_check(data, model, "after the final compaction")


@pytest.mark.timeout(90)
def test_compaction_with_concurrent_writes_finishes(tmp_path, spawn, chaos_seed):
    """Compaction and writers together, in a process so that a deadlock can be killed.

    Regression for a lock-order inversion: ``Disk.drop_segment`` holds the disk's
    condition lock while it waits for LMDB's write lock, and the committer holds LMDB's
    write lock while it waits for the condition lock (``Disk._index_batch``).
    """
    data = tmp_path / "disk"
    data.mkdir()
    model = Model()
    with Engine(compaction_config(data)) as engine:
        engine.create_bucket(BUCKET)
        fill(engine, model, random.Random(chaos_seed), physical_ms=1)
    child = spawn([
        "race", "--dir", str(data), "--config", "compaction", "--seed", str(chaos_seed),
        "--round", "1", "--keys", str(KEYS), "--seconds", "6", "--max-seconds", "120",
    ])
    finished = child.wait_for("DONE", 30)
    if not finished:
        child.dump_stacks()
    child.kill()
    passes = [line for line in child.lines if line.startswith("COMPACTED")]
    assert finished, (
        f"compaction racing writers did not finish after {len(passes)} passes (deadlock?); "
        f"errors: {child.errors()}; the writer's threads:\n{child.stderr()}"
    )
    assert not child.errors(), child.errors()
    model.feed(child.lines)
    reopen_and_check(data, model, "after the race")


@pytest.mark.timeout(60)
def test_reader_taken_before_compaction_reads_its_bytes(tmp_path):
    """A reader got from ``get`` before compaction moved its record must still read the
    exact bytes: an open file stays readable after its unlink. It must never claim the
    object is damaged (IntegrityError), which would send a healthy copy to repair."""
    data = tmp_path / "disk"
    data.mkdir()
    with Engine(compaction_config(data)) as engine:
        engine.create_bucket(BUCKET)
        model = Model()
        fill(engine, model, random.Random(1), physical_ms=1)
        keep = b"k0000"
        head = engine.head(BUCKET, keep)
        reader = engine.get(BUCKET, keep)
        others = [b"k%04d" % i for i in range(1, KEYS)]
        for logical, key in enumerate(others, 1):
            put_checked(engine, model, key, Version(2, logical, 1), 8 * KiB)
        reports = engine.compact()
        assert sum(r.segments_dropped for r in reports), reports
        try:
            got = reader.read()
        except IntegrityError as exc:
            pytest.fail(f"a reader opened before compaction reports damage: {exc}")
        assert got == value_bytes(keep, head.version, head.size)
        assert not engine.head(BUCKET, keep).damaged


@pytest.mark.timeout(60)
def test_scrub_racing_compaction_reports_no_false_damage(tmp_path):
    """Compaction moves records and drops segments while a scrub pass is under way (run
    from a file-system hook at the scrub's first read, so the interleaving is exact). The
    moved copies are healthy: scrub must not report them damaged, or a repair loop would
    chase dozens of false alarms."""
    data = tmp_path / "disk"
    data.mkdir()
    fs = FaultyFileSystem()
    with Engine(compaction_config(data), fs=fs) as engine:
        engine.create_bucket(BUCKET)
        model = Model()
        rng = random.Random(3)
        fill(engine, model, rng, physical_ms=1)
        fill(engine, model, rng, physical_ms=2, overwrite=0.8)
        compacted: list[CompactionReport] = []
        started = threading.Event()

        def compact_once(op: str, _path: str) -> None:
            if op == "read" and not started.is_set():
                started.set()  # compaction reads too: only the first read triggers it
                compacted.extend(engine.compact())

        fs.on_call = compact_once
        try:
            reports = engine.scrub()
        finally:
            fs.on_call = None
        assert compacted, "the scrub never read a record"
        assert sum(r.segments_dropped for r in compacted), compacted
        damaged = [d for r in reports for d in r.damaged]
        assert not damaged, f"{len(damaged)} healthy records reported damaged: {damaged[:3]}"
        model.check(engine, pin=False)
        scrub_clean(engine)
