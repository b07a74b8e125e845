"""Run one engine cell of engine_bench alone, for as long as asked: a target for profilers.

    python -m benchmarks.engine_cell put  --size 1024 --threads 16 --mode threads --duration 10
    python -m benchmarks.engine_cell get  --size 1024 --threads 1 --inline 4096 --duration 10
    python -m benchmarks.engine_cell floor --size 1024 --threads 16 --burn-us 40 --duration 5
    py-spy record -r 400 -f raw -o put.txt -- .venv/bin/python -m benchmarks.engine_cell put ...

No floors are run, so every sample a profiler takes belongs to the engine cell (after a
short setup: opening the engine and, for gets, preloading the keys).

``floor`` runs the group-commit floor with its LMDB commit instead, each writer first
spending ``--burn-us`` microseconds of pure-Python CPU per record: it shows how writer
threads that hold the GIL slow down a committer that waits on fsync (RESULTS.md).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence

from . import _floors
from ._timing import Sample, run_threads
from .engine_bench import BUCKET, Bench, Plan, _key, _value


def _burning_floor(directory: str, size: int, threads: int, burn_us: float, duration_s: float
                   ) -> tuple[Sample, float]:
    log = _floors.GroupCommitLog(directory, index=True)
    record = _value(size + 100)

    def op(tid: int, i: int) -> None:
        until = time.perf_counter() + burn_us / 1e6
        while time.perf_counter() < until:
            pass
        log.append_durable(_key(tid, i), record)

    try:
        sample = run_threads(threads, op, duration_s)
    finally:
        log.close()
    return sample, sample.ops / log.batches if log.batches else 0.0


def main(argv: Sequence[str] | None = None) -> float:
    """Run the cell; returns its ops/s."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.engine_cell")
    p.add_argument("kind", choices=("put", "get", "floor"))
    p.add_argument("--size", type=int, default=1024, help="value bytes")
    p.add_argument("--threads", type=int, default=16, help="writers / readers / depth")
    p.add_argument("--mode", choices=("threads", "pipeline"), default="threads",
                   help="puts: N threads calling put, or one thread with N submit_put")
    p.add_argument("--inline", type=int, default=0, help="gets: inline_max_bytes")
    p.add_argument("--keys", type=int, default=20_000, help="gets: keys preloaded")
    p.add_argument("--burn-us", type=float, default=0.0,
                   help="floor: pure-Python CPU per record in each writer, microseconds")
    p.add_argument("--duration", type=float, default=10.0, help="seconds")
    p.add_argument("--dir", help="base directory (default: $TMPDIR)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    base = tempfile.mkdtemp(prefix="cairn-engine-cell-", dir=args.dir)
    bench = Bench(base, Plan(duration_s=args.duration), lambda line: None)
    extra = ""
    try:
        if args.kind == "floor":
            sample, per_batch = _burning_floor(base, args.size, args.threads, args.burn_us,
                                               args.duration)
            extra = f", {per_batch:.1f} records/batch, {args.burn_us:g} µs burnt per record"
        elif args.kind == "put":
            sample, per_commit = bench.engine_put(args.size, args.threads, args.mode)
            extra = f", {per_commit:.1f} records/commit"
        else:
            directory = tempfile.mkdtemp(dir=base)
            engine = bench.open_engine(directory, args.inline)
            try:
                value = _value(args.size)
                keys = [_key(0, i) for i in range(args.keys)]
                bench.prefill(engine, keys, value)
                rng = random.Random(0)
                rng.shuffle(keys)
                sample = bench.read_cell(
                    args.threads, keys, lambda k: engine.get(BUCKET, k).read())
            finally:
                engine.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"{args.kind} {args.size} B x{args.threads} {args.mode if args.kind == 'put' else ''}"
          f": {sample.ops_s:,.0f} ops/s, {sample.cpu_us_per_op:.0f} µs CPU/op{extra}")
    return sample.ops_s


if __name__ == "__main__":
    main()
