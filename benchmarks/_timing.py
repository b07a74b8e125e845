"""Timing loops shared by the benchmarks: N threads for a fixed time, or one pipeline.

Every loop returns a ``Sample``: operations done, wall time, and the process CPU time
they cost (all threads, the engine's committer included), so CPU per operation can be
reported beside throughput.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Sample:
    """One timed run of one cell."""

    ops: int
    elapsed_s: float
    cpu_s: float

    @property
    def ops_s(self) -> float:
        return self.ops / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def cpu_us_per_op(self) -> float:
        return self.cpu_s / self.ops * 1e6 if self.ops else 0.0


def run_threads(threads: int, op: Callable[[int, int], Any], duration_s: float) -> Sample:
    """Run ``op(thread_index, op_index)`` in ``threads`` threads for ``duration_s``.

    The threads start together behind a barrier; the clock stops when the last one has
    finished its last operation, so an operation that started before the deadline counts.

    Raises:
        the first exception any ``op`` raised.
    """
    counts = [0] * threads
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads + 1)
    deadline = [0.0]

    def worker(tid: int) -> None:
        barrier.wait()
        stop_at = deadline[0]
        done = 0
        try:
            while time.perf_counter() < stop_at:
                op(tid, done)
                done += 1
        except BaseException as exc:
            errors.append(exc)
        counts[tid] = done

    workers = [
        threading.Thread(target=worker, args=(i,), name=f"bench-{i}", daemon=True)
        for i in range(threads)
    ]
    for t in workers:
        t.start()
    cpu_start = time.process_time()
    start = time.perf_counter()
    deadline[0] = start + duration_s
    barrier.wait()
    for t in workers:
        t.join()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    if errors:
        raise errors[0]
    return Sample(sum(counts), elapsed, cpu)


def run_pipeline(depth: int, submit: Callable[[int], Future[Any]], duration_s: float) -> Sample:
    """One thread keeps ``depth`` operations in flight for ``duration_s``, then drains.

    Raises:
        the first exception a future carried.
    """
    inflight: deque[Future[Any]] = deque()
    done = submitted = 0
    cpu_start = time.process_time()
    start = time.perf_counter()
    stop_at = start + duration_s
    while time.perf_counter() < stop_at:
        if len(inflight) >= depth:
            inflight.popleft().result()
            done += 1
        inflight.append(submit(submitted))
        submitted += 1
    while inflight:
        inflight.popleft().result()
        done += 1
    return Sample(done, time.perf_counter() - start, time.process_time() - cpu_start)


def median_sample(samples: list[Sample]) -> Sample:
    """The run with the median throughput (the lower middle one for an even count)."""
    ordered = sorted(samples, key=lambda s: s.ops_s)
    return ordered[(len(ordered) - 1) // 2]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0
