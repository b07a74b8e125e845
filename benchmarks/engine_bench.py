"""Storage engine benchmark: puts and gets beside plain-Python floors on the same disk.

    python -m benchmarks.engine_bench [--quick] [--dir DIR] [--out JSON]

One run measures, on one disk:

- engine puts (sync "always") for each value size and writer count, two ways: N threads
  each calling ``Engine.put`` (the engine's group commit batches them), and one thread
  keeping N ``submit_put`` futures in flight ("pipeline");
- the group-commit floor for the same size and concurrency (N threads append to one file,
  one shared fdatasync per batch), and the same plus one synced LMDB commit per batch;
- the sequential-write floor (1 MiB writes, fsync every 8 MiB) for 1 MiB puts;
- engine gets (1 and 16 threads) beside the raw-read floor (one short LMDB read
  transaction + one ``os.pread``) and that floor plus a CRC32C of the value;
- 1 KiB gets and puts with ``inline_max_bytes`` 4096 vs 0, to decide whether inlining pays.

Every cell is run ``--repeats`` times, interleaved, and the median is reported. A full run
rewrites the generated block of the "Storage engine" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Final

from cairn.node.storage import format as fmt
from cairn.node.storage.config import EngineConfig
from cairn.node.storage.engine import Engine
from cairn.types import Version

from . import _floors, _report
from ._engine_report import INLINE_MAX_BYTES, render, size_name, summarise
from ._timing import Sample, run_pipeline, run_threads

KiB: Final = 1024
MiB: Final = 1024 * KiB
BUCKET: Final = "bench"
SECTION: Final = "Storage engine"
MARKER: Final = "engine_bench"
RESULTS_PATH: Final = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
PREFILL_DEPTH: Final = 256
NOT_A_DISK: Final = ("tmpfs", "ramfs", "devtmpfs")


@dataclass(frozen=True, slots=True)
class Plan:
    """What one run measures and for how long."""

    sizes: tuple[int, ...] = (KiB, 16 * KiB, MiB)
    writers: tuple[int, ...] = (1, 16, 64)
    read_threads: tuple[int, ...] = (1, 16)
    duration_s: float = 1.0
    repeats: int = 3
    read_bytes: int = 64 * MiB  # per size: keys = clamp(read_bytes / size, 64, max_read_keys)
    max_read_keys: int = 20_000
    sections: tuple[str, ...] = ("put", "get", "inline")

    def read_keys(self, size: int) -> int:
        return max(16, min(self.max_read_keys, self.read_bytes // size))


QUICK: Final = Plan(duration_s=0.3, repeats=1, read_bytes=16 * MiB, max_read_keys=4000)


def _key(tid: int, i: int) -> bytes:
    return b"k%03d-%09d" % (tid, i)


def _value(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def _remove(directory: str) -> None:
    """Delete a cell's files, then sync: the disk is mounted with ``discard`` here, and the
    trims of the files just deleted should not land inside the next cell's timing."""
    shutil.rmtree(directory, ignore_errors=True)
    os.sync()


def _version() -> Version:
    return Version(time.time_ns() // 1_000_000, 0, 1)


class Bench:
    """Runs the cells of a plan under one base directory; every cell gets a fresh one."""

    def __init__(self, base: str, plan: Plan, log: Callable[[str], None]) -> None:
        self.base = base
        self.plan = plan
        self.log = log

    def _fresh_dir(self, name: str) -> str:
        return tempfile.mkdtemp(prefix=name + "-", dir=self.base)

    def open_engine(self, directory: str, inline_max_bytes: int = 0) -> Engine:
        engine = Engine(EngineConfig(disks=(directory,), inline_max_bytes=inline_max_bytes))
        engine.open()
        engine.create_bucket(BUCKET)
        return engine

    # ------------------------------------------------------------------ puts

    def engine_put(self, size: int, writers: int, mode: str, inline_max_bytes: int = 0
                   ) -> tuple[Sample, float]:
        """(sample, records per group commit) for one put cell on a fresh engine."""
        directory = self._fresh_dir("put")
        engine = self.open_engine(directory, inline_max_bytes)
        value, version = _value(size), _version()
        try:
            if mode == "threads":
                def op(tid: int, i: int) -> None:
                    engine.put(BUCKET, _key(tid, i), value, version=version)

                sample = run_threads(writers, op, self.plan.duration_s)
            else:
                def submit(i: int) -> Any:
                    return engine.submit_put(BUCKET, _key(0, i), value, version=version)

                sample = run_pipeline(writers, submit, self.plan.duration_s)
            stats = engine.disks[0].stats
            per_commit = stats.committed_records / stats.commits if stats.commits else 0.0
        finally:
            engine.close()
            _remove(directory)
        return sample, per_commit

    def floor_group_commit(self, size: int, writers: int, index: bool) -> tuple[Sample, float]:
        """(sample, records per fdatasync): appends of an engine-sized record."""
        directory = self._fresh_dir("floor-gc")
        record = fmt.encode_record(
            fmt.RECORD_PUT, _version(), 0, BUCKET.encode(), _key(0, 0),
            fmt.encode_meta("raw", 0, {}), _value(size),
        )
        log = _floors.GroupCommitLog(directory, index=index)
        try:
            sample = run_threads(
                writers, lambda tid, i: log.append_durable(_key(tid, i), record),
                self.plan.duration_s,
            )
            per_batch = sample.ops / log.batches if log.batches else 0.0
        finally:
            log.close()
            _remove(directory)
        return sample, per_batch

    def floor_sequential(self) -> Sample:
        directory = self._fresh_dir("floor-seq")
        try:
            return _floors.sequential_write(directory, self.plan.duration_s)
        finally:
            _remove(directory)

    def run_puts(self) -> dict[str, Any]:
        runs: dict[tuple[str, int, int], list[tuple[Sample, float]]] = {}
        seq: list[Sample] = []
        for rep in range(self.plan.repeats):
            for size in self.plan.sizes:
                for writers in self.plan.writers:
                    cells: list[tuple[str, Callable[[], tuple[Sample, float]]]] = [
                        ("floor_gc", partial(self.floor_group_commit, size, writers, False)),
                        ("floor_gc_index", partial(self.floor_group_commit, size, writers, True)),
                        ("threads", partial(self.engine_put, size, writers, "threads")),
                        ("pipeline", partial(self.engine_put, size, writers, "pipeline")),
                    ]
                    if size <= INLINE_MAX_BYTES and "inline" in self.plan.sections:
                        cells += [
                            (f"{mode}_inline",
                             partial(self.engine_put, size, writers, mode, INLINE_MAX_BYTES))
                            for mode in ("threads", "pipeline")
                        ]
                    for name, cell in cells:
                        result = cell()
                        runs.setdefault((name, size, writers), []).append(result)
                        self.log(f"  put rep {rep + 1} {name:15} {size_name(size):>7} x{writers:<3}"
                                 f" {result[0].ops_s:10,.0f} ops/s")
            if MiB in self.plan.sizes:
                seq.append(self.floor_sequential())
                self.log(f"  seq rep {rep + 1} {seq[-1].ops_s:10,.0f} MiB/s")
        return {"runs": runs, "sequential": seq}

    # ------------------------------------------------------------------ gets

    def prefill(self, engine: Engine, keys: list[bytes], value: bytes) -> None:
        version = _version()
        pending: list[Any] = []
        for key in keys:
            pending.append(engine.submit_put(BUCKET, key, value, version=version))
            if len(pending) >= PREFILL_DEPTH:
                for f in pending:
                    f.result()
                pending.clear()
        for f in pending:
            f.result()

    def read_cell(self, threads: int, keys: list[bytes], get: Callable[[bytes], bytes]
                   ) -> Sample:
        orders = []
        for tid in range(threads):
            order = list(keys)
            random.Random(tid).shuffle(order)
            orders.append(order)
        n = len(keys)
        return run_threads(threads, lambda tid, i: get(orders[tid][i % n]),
                           self.plan.duration_s)

    def run_gets(self) -> dict[tuple[str, int, int], list[Sample]]:
        """Read cells: (variant, size, threads); variants: engine, engine_inline, floor,
        floor_crc, floor_inline."""
        runs: dict[tuple[str, int, int], list[Sample]] = {}
        stores: list[tuple[str, int, list[bytes], Callable[[bytes], bytes], Callable[[], None]]]
        stores = []
        dirs = []
        try:
            sizes = self.plan.sizes
            if "get" not in self.plan.sections:
                sizes = tuple(s for s in sizes if s <= INLINE_MAX_BYTES)
            for size in sizes:
                value = _value(size)
                keys = [_key(0, i) for i in range(self.plan.read_keys(size))]
                variants = [("engine", 0), ("floor", 0), ("floor_crc", 0)]
                if size <= INLINE_MAX_BYTES and "inline" in self.plan.sections:
                    variants += [("engine_inline", INLINE_MAX_BYTES), ("floor_inline", 1)]
                for name, inline in variants:
                    directory = self._fresh_dir("get")
                    dirs.append(directory)
                    get: Callable[[bytes], bytes]
                    if name.startswith("engine"):
                        engine = self.open_engine(directory, inline)
                        self.prefill(engine, keys, value)

                        def get(k: bytes, e: Engine = engine) -> bytes:
                            return e.get(BUCKET, k).read()

                        close = engine.close
                    else:
                        store = _floors.RawStore(directory, keys, value, inline=bool(inline),
                                                 verify=name == "floor_crc")
                        get, close = store.get, store.close
                    if get(keys[-1]) != value:
                        raise AssertionError(f"{name} returned the wrong bytes")
                    stores.append((name, size, keys, get, close))
            for rep in range(self.plan.repeats):
                for name, size, keys, get, _close in stores:
                    for threads in self.plan.read_threads:
                        sample = self.read_cell(threads, keys, get)
                        runs.setdefault((name, size, threads), []).append(sample)
                        self.log(f"  get rep {rep + 1} {name:15} {size_name(size):>7} x{threads:<3}"
                                 f" {sample.ops_s:10,.0f} ops/s")
        finally:
            for *_rest, close in stores:
                close()
            for directory in dirs:
                _remove(directory)
        return runs


# ---------------------------------------------------------------------- entry point


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.engine_bench",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one short repeat (about a minute)")
    p.add_argument("--dir", help="base directory on the disk to measure (default: a temp "
                                 "dir under $TMPDIR or /tmp, refused if that is tmpfs)")
    p.add_argument("--out", help="write the full results as JSON here")
    p.add_argument("--results", help="markdown file to update (default: benchmarks/RESULTS.md "
                                     "for a full run, nothing for --quick)")
    p.add_argument("--no-results", action="store_true", help="do not touch any RESULTS.md")
    p.add_argument("--sizes", type=_ints, help="value sizes in bytes, comma separated")
    p.add_argument("--writers", type=_ints, help="put concurrencies, comma separated")
    p.add_argument("--read-threads", type=_ints, help="get concurrencies, comma separated")
    p.add_argument("--duration", type=float, help="seconds per cell and repeat")
    p.add_argument("--repeats", type=int, help="runs per cell (median reported)")
    p.add_argument("--read-bytes", type=int, help="bytes of values preloaded for get cells")
    p.add_argument("--only", type=lambda t: tuple(t.split(",")),
                   help="sections to run: put,get,inline (default all)")
    return p.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else Plan()
    changes: dict[str, Any] = {}
    for arg, field in (("sizes", "sizes"), ("writers", "writers"),
                       ("read_threads", "read_threads"), ("duration", "duration_s"),
                       ("repeats", "repeats"), ("read_bytes", "read_bytes"),
                       ("only", "sections")):
        if getattr(args, arg) is not None:
            changes[field] = getattr(args, arg)
    return Plan(**{**asdict(plan), **changes})


def _base_dir(requested: str | None) -> str:
    """A fresh directory for this run (removed at the end) under ``requested`` or $TMPDIR.

    Raises:
        SystemExit: the default temp dir is not on a disk (tmpfs): pass --dir.
    """
    if requested:
        os.makedirs(requested, exist_ok=True)
        return tempfile.mkdtemp(prefix="cairn-engine-bench-", dir=requested)
    base = tempfile.mkdtemp(prefix="cairn-engine-bench-")
    if _report.filesystem_of(base)["type"] in NOT_A_DISK:
        shutil.rmtree(base)
        raise SystemExit(f"{tempfile.gettempdir()} is not on a disk; pass --dir DIR")
    return base


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the result that ``--out`` writes."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    plan = make_plan(args)
    base = _base_dir(args.dir)
    fs_type = _report.filesystem_of(base)["type"]
    if fs_type in NOT_A_DISK:
        print(f"warning: {base} is on {fs_type}, not a disk", file=sys.stderr)
    result: dict[str, Any] = {
        "schema": 1,
        "command": shlex.join(["python", "-m", "benchmarks.engine_bench", *argv]),
        "machine": _report.machine_info(base),
        "plan": asdict(plan),
    }

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    bench = Bench(base, plan, log)
    started = time.perf_counter()
    try:
        puts = bench.run_puts() if "put" in plan.sections else None
        gets = bench.run_gets() if {"get", "inline"} & set(plan.sections) else None
    finally:
        shutil.rmtree(base, ignore_errors=True)
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    result["summary"] = summarise(plan.sizes, plan.writers, puts, gets)
    text = render(result)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    results_path = args.results or (None if args.quick else RESULTS_PATH)
    if results_path and not args.no_results:
        _report.update_results_section(results_path, SECTION, MARKER, text)
        log(f"updated {results_path}")
    return result


if __name__ == "__main__":
    main()
