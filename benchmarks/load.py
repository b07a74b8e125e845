"""The load generator: one tool that drives cairn (SDK) and Swift (HTTP API) alike.

    python -m benchmarks.load --target cairn --seeds 127.0.0.1:7101 --workload put \\
        --size 4k --concurrency 16 --duration 10 --json out.jsonl
    python -m benchmarks.load --target swift --url http://127.0.0.1:8080 --workload mix \\
        --size 64k --concurrency 16 --count 2000

Workloads and their phases (each phase is reported on its own):
- ``put``: new keys.
- ``get``: ``prepare`` (PUT ``--keys`` keys, untimed in the sense that it is its own
  phase), then GETs of keys drawn at random from what was written.
- ``delete``: ``prepare``, then DELETEs of the prepared keys in order; the phase ends
  early when they run out.
- ``list``: ``prepare``, then listings of the run's prefix, one page (up to 1,000 keys)
  an operation.
- ``mix``: ``prepare``, then ``--get-share`` GETs (default 0.8) and PUTs of new keys.

Each phase runs ``--concurrency`` coroutines (``--sync``: the blocking client from that
many threads) for ``--duration`` seconds or until ``--count`` operations completed. A
phase reports ops/s and MB/s of successful operations, latency p50/p95/p99/max (all
operations, failed ones too), errors by kind, and the server processes' CPU per
successful operation (user + system from ``/proc``, read before the phase and after a
short settle, so work an answer left behind, the third replica's write, is counted).
Latencies are taken around each call on the event loop (with ``--sync``, the hand-off
to the thread is included).

Output: a summary table on stdout, and with ``--json FILE`` one JSON object per phase
appended to FILE (fields in ``PhaseResult.as_dict``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from . import _targets
from ._targets import CairnTarget, SwiftTarget, Target

MiB: Final = 1024 * 1024
SETTLE_S: Final = 0.3
SIZES: Final = {"4k": 4 << 10, "64k": 64 << 10, "1m": 1 << 20, "64m": 64 << 20}
WORKLOADS: Final = ("put", "get", "delete", "list", "mix")
QUANTILES: Final = 100
"""The JSON carries the latency at every percent (0..100) for CDF plots."""
SCHEMA: Final = 1


def parse_size(text: str) -> int:
    """``4k``, ``64k``, ``1m``, ``64m`` or a number of bytes (suffixes k/m/g are KiB...)."""
    text = text.strip().lower()
    if text in SIZES:
        return SIZES[text]
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def size_name(size: int) -> str:
    for name, n in SIZES.items():
        if n == size:
            return name
    return str(size)


@dataclass
class KeyPool:
    """The keys written so far, per object size (GETs draw from the pool of their size)."""

    prefix: str
    keys: dict[int, list[str]] = field(default_factory=dict)
    serial: int = 0

    def new_key(self, phase: str, size: int) -> str:
        self.serial += 1
        return f"{self.prefix}/{size_name(size)}/{phase}/{self.serial:09d}"

    def add(self, size: int, key: str) -> None:
        self.keys.setdefault(size, []).append(key)

    def pick(self, size: int, rng: random.Random) -> str:
        keys = self.keys.get(size)
        if not keys:
            raise RuntimeError(f"no {size_name(size)} objects written yet to read")
        return rng.choice(keys)


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 for an empty one)."""
    if not ordered:
        return 0.0
    rank = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered) - 1e-9) - 1))
    return ordered[rank]


@dataclass
class PhaseResult:
    target: str
    workload: str
    phase: str
    size_bytes: int
    concurrency: int
    client: str
    ops: int
    elapsed_s: float
    latencies_s: list[float]
    errors: Counter[str]
    server_cpu_s: float
    client_cpu_s: float
    server_pids: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ops_s(self) -> float:
        return self.ops / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def mb_s(self) -> float:
        moved = 0 if self.phase in ("delete", "list") else self.size_bytes
        return self.ops_s * moved / MiB

    @property
    def server_cpu_ms_per_op(self) -> float:
        return self.server_cpu_s * 1e3 / self.ops if self.ops else 0.0

    def as_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies_s)
        ms = [x * 1e3 for x in lat]
        mean = sum(ms) / len(ms) if ms else 0.0
        return {
            "schema": SCHEMA, "target": self.target, "workload": self.workload,
            "phase": self.phase, "size": size_name(self.size_bytes),
            "size_bytes": self.size_bytes, "concurrency": self.concurrency,
            "client": self.client, "ops": self.ops, "errors": dict(self.errors),
            "error_count": sum(self.errors.values()),
            "elapsed_s": round(self.elapsed_s, 4), "ops_s": round(self.ops_s, 2),
            "mb_s": round(self.mb_s, 3),
            "latency_ms": {"p50": round(percentile(ms, 50), 3),
                           "p95": round(percentile(ms, 95), 3),
                           "p99": round(percentile(ms, 99), 3),
                           "max": round(ms[-1] if ms else 0.0, 3), "mean": round(mean, 3)},
            "latency_ms_quantiles": [round(percentile(ms, q), 3)
                                     for q in range(QUANTILES + 1)],
            "server_cpu_s": round(self.server_cpu_s, 3),
            "server_cpu_ms_per_op": round(self.server_cpu_ms_per_op, 3),
            "client_cpu_ms_per_op": round(self.client_cpu_s * 1e3 / self.ops, 3)
            if self.ops else 0.0,
            "server_pids": self.server_pids,
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **self.extra,
        }


Op = Callable[[int], Awaitable[None]]


async def _drive(concurrency: int, op: Op, duration_s: float | None, count: int | None,
                 latencies: list[float], errors: Counter[str]) -> int:
    """Run ``op`` from ``concurrency`` coroutines; returns successful operations. An op
    that raises ``StopAsyncIteration`` ends its worker (nothing left to do)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration_s if duration_s is not None else float("inf")
    issued = [0]
    ok = [0]

    async def worker() -> None:
        while loop.time() < deadline and (count is None or issued[0] < count):
            i = issued[0]
            issued[0] += 1
            start = time.perf_counter()
            try:
                await op(i)
            except StopAsyncIteration:
                return
            except Exception as exc:  # every failure is counted by kind, none stops the run
                errors[_targets.error_kind(exc)] += 1
            else:
                ok[0] += 1
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok[0]


async def run_phase(target: Target, pool: KeyPool, workload: str, phase: str, size: int,
                    concurrency: int, *, duration_s: float | None = None,
                    count: int | None = None, get_share: float = 0.8, seed: int = 0,
                    warmup: int = 0, extra: dict[str, Any] | None = None) -> PhaseResult:
    """One measured phase. ``phase`` is the operation (``put``, ``get``, ``delete``,
    ``list``, ``mix``; ``prepare`` is a ``put``); ``workload`` only labels the result.

    Raises:
        ValueError: neither ``duration_s`` nor ``count``.
    """
    if duration_s is None and count is None:
        raise ValueError("a phase needs a duration or a count")
    rng = random.Random(seed)
    data = os.urandom(size)
    op_name = "put" if phase == "prepare" else phase
    deletable = list(pool.keys.get(size, [])) if op_name == "delete" else []

    async def put(_: int) -> None:
        key = pool.new_key(phase, size)
        await target.put(key, data)
        pool.add(size, key)

    async def get(_: int) -> None:
        n = await target.get(pool.pick(size, rng), size)
        if n != size:
            raise RuntimeError(f"read {n} bytes, not {size}")

    async def delete(_: int) -> None:
        if not deletable:
            raise StopAsyncIteration
        key = deletable.pop(0)
        await target.delete(key)
        pool.keys[size].remove(key)

    async def listing(_: int) -> None:
        await target.list(pool.prefix + "/")

    async def mix(i: int) -> None:
        await (get(i) if rng.random() < get_share else put(i))

    op: Op = {"put": put, "get": get, "delete": delete, "list": listing, "mix": mix}[op_name]
    if warmup and op_name != "delete":
        await _drive(concurrency, op, None, warmup, [], Counter())
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    server_start = target.server_cpu_s()
    client_start = time.process_time()
    start = time.perf_counter()
    ops = await _drive(concurrency, op, duration_s, count, latencies, errors)
    elapsed = time.perf_counter() - start
    await asyncio.sleep(SETTLE_S)
    return PhaseResult(target.name, workload, phase, size, concurrency,
                       "sync" if target.sync else "async", ops, elapsed, latencies, errors,
                       target.server_cpu_s() - server_start,
                       time.process_time() - client_start, len(target.pids), extra or {})


def phases_of(workload: str) -> list[str]:
    return [workload] if workload == "put" else ["prepare", workload]


async def run_workload(target: Target, args: argparse.Namespace) -> list[PhaseResult]:
    pool = KeyPool(args.prefix or f"load-{uuid.uuid4().hex[:8]}")
    size = parse_size(args.size)
    results = []
    for phase in phases_of(args.workload):
        if phase == "prepare":
            keys = args.keys or (args.count if args.workload == "delete" and args.count
                                 else _default_keys(args.workload, size))
            r = await run_phase(target, pool, args.workload, phase, size, args.concurrency,
                                count=keys)
        else:
            r = await run_phase(target, pool, args.workload, phase, size, args.concurrency,
                                duration_s=args.duration, count=args.count,
                                get_share=args.get_share, seed=args.seed,
                                warmup=args.warmup)
        results.append(r)
        print_row(r)
        if args.json:
            append_json(args.json, r.as_dict())
    return results


def append_json(path: str, record: dict[str, Any]) -> None:
    """One JSON line appended to ``path`` (small and rare: fine on the event loop)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _default_keys(workload: str, size: int) -> int:
    if workload == "list":
        return 200
    if workload == "delete":
        return 2000 if size <= 64 << 10 else 100
    return max(8, min(1000, (256 << 20) // size))


def make_target(args: argparse.Namespace) -> Target:
    pids = [int(p) for p in args.pids.split(",")] if args.pids else []
    if args.target == "cairn":
        seeds = args.seeds or os.environ.get("CAIRN_SEEDS", "")
        if not seeds:
            raise SystemExit("--seeds (or CAIRN_SEEDS) is needed for --target cairn")
        return CairnTarget(seeds.split(","), args.bucket, pids=pids, sync=args.sync,
                           concurrency=args.concurrency)
    return SwiftTarget(args.url, args.bucket, user=args.user, key=args.key,
                       pidfile=args.pidfile, pids=pids, sync=args.sync,
                       concurrency=args.concurrency)


HEADER: Final = (f"{'target':<6} {'phase':<8} {'size':>5} {'conc':>4} {'ops':>7} {'ops/s':>9} "
                 f"{'MB/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} "
                 f"{'srv CPU ms/op':>13}  errors")


def print_row(r: PhaseResult, file: Any = None) -> None:
    d = r.as_dict()
    lat = d["latency_ms"]
    errs = ", ".join(f"{k}: {v}" for k, v in d["errors"].items()) or "-"
    print(f"{d['target']:<6} {d['phase']:<8} {d['size']:>5} {d['concurrency']:>4} "
          f"{d['ops']:>7} {d['ops_s']:>9.1f} {d['mb_s']:>8.2f} {lat['p50']:>8.2f} "
          f"{lat['p95']:>8.2f} {lat['p99']:>8.2f} {lat['max']:>8.2f} "
          f"{d['server_cpu_ms_per_op']:>13.3f}  {errs}", file=file or sys.stdout, flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", choices=("cairn", "swift"), required=True)
    p.add_argument("--seeds", help="cairn: node addresses, comma-separated (or CAIRN_SEEDS)")
    p.add_argument("--url", default=_targets.SWIFT_URL, help="swift: the proxy's URL")
    p.add_argument("--user", default=_targets.SWIFT_USER, help="swift: tempauth user")
    p.add_argument("--key", default=_targets.SWIFT_KEY, help="swift: tempauth key")
    p.add_argument("--pidfile", default=_targets.SWIFT_PIDFILE,
                   help="swift: setup.sh's pids file (process group leaders)")
    p.add_argument("--pids", help="server pids to charge CPU to, comma-separated "
                   "(default: cairn nodes found by port, or the Swift pids file)")
    p.add_argument("--bucket", default="bench", help="bucket (cairn) or container (swift)")
    p.add_argument("--prefix", help="key prefix (default: a fresh one per run)")
    p.add_argument("--workload", choices=WORKLOADS, default="put")
    p.add_argument("--size", default="4k", help="4k, 64k, 1m, 64m or bytes")
    p.add_argument("--concurrency", "-c", type=int, default=16)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--duration", type=float, help="seconds per phase (default 10)")
    group.add_argument("--count", type=int, help="operations per phase")
    p.add_argument("--keys", type=int, default=0, help="objects the prepare phase writes")
    p.add_argument("--get-share", type=float, default=0.8, help="mix: share of GETs")
    p.add_argument("--warmup", type=int, default=0, help="untimed operations first")
    p.add_argument("--seed", type=int, default=0, help="random seed (GET key choice)")
    p.add_argument("--sync", action="store_true",
                   help="blocking clients from --concurrency threads instead of asyncio")
    p.add_argument("--json", help="append one JSON line per phase to this file")
    args = p.parse_args(argv)
    if args.duration is None and args.count is None:
        args.duration = 10.0
    if args.concurrency < 1:
        p.error("--concurrency must be at least 1")
    return args


async def amain(args: argparse.Namespace) -> list[PhaseResult]:
    target = make_target(args)
    await target.open()
    try:
        print(HEADER, flush=True)
        return await run_workload(target, args)
    finally:
        await target.close()


def run(coro: Awaitable[Any]) -> Any:
    """On uvloop where installed, as the nodes and the other network benchmarks run."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with the node extra
        return asyncio.run(coro)  # type: ignore[arg-type]
    return uvloop.run(coro)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(amain(args))
    return 1 if any(r.ops == 0 for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
