"""The load loop of the network benchmarks: N coroutines for a fixed time, with the CPU
of this process (the client) and of the server processes measured around it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ._procs import cpu_of

MiB: Final = 1024 * 1024
SETTLE_S: Final = 0.2
"""Pause after the last operation before the servers' CPU is read: work the operations
left behind (a third replica's write after a W=2 answer) is counted with them."""


@dataclass(frozen=True, slots=True)
class NetSample:
    """One timed run of one cell.

    Attributes:
        ops: operations completed.
        elapsed_s: from the start until the last operation ended.
        bytes_per_op: payload bytes one operation moves.
        client_cpu_s: CPU of this process (the client, all threads) over the run.
        server_cpu_s: CPU of the server processes (summed) over the run and the settle.
    """

    ops: int
    elapsed_s: float
    bytes_per_op: int
    client_cpu_s: float
    server_cpu_s: float

    @property
    def ops_s(self) -> float:
        return self.ops / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def mb_s(self) -> float:
        return self.ops_s * self.bytes_per_op / MiB

    @property
    def server_cpu_ms_per_op(self) -> float:
        return self.server_cpu_s / self.ops * 1e3 if self.ops else 0.0

    @property
    def client_cpu_ms_per_op(self) -> float:
        return self.client_cpu_s / self.ops * 1e3 if self.ops else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"ops": self.ops, "elapsed_s": round(self.elapsed_s, 4),
                "ops_s": round(self.ops_s, 1), "mb_s": round(self.mb_s, 1),
                "server_cpu_ms_per_op": round(self.server_cpu_ms_per_op, 3),
                "client_cpu_ms_per_op": round(self.client_cpu_ms_per_op, 3)}


Op = Callable[[int, int], Awaitable[Any]]
"""One operation: ``op(worker_index, op_index)``."""


async def run_load(concurrency: int, op: Op, duration_s: float, server_pids: Sequence[int],
                   bytes_per_op: int, *, min_ops: int = 1, settle_s: float = SETTLE_S
                   ) -> NetSample:
    """Run ``concurrency`` coroutines calling ``op`` until ``duration_s`` passed (and at
    least ``min_ops`` completed); an operation started before the deadline counts.

    Raises:
        the first exception an ``op`` raised.
    """
    loop = asyncio.get_running_loop()
    counts = [0] * concurrency
    stop_at = [0.0]

    async def worker(w: int) -> None:
        done = 0
        while loop.time() < stop_at[0] or sum(counts) + done < min_ops:
            await op(w, done)
            done += 1
        counts[w] = done

    server_start = cpu_of(server_pids)
    client_start = time.process_time()
    start = time.perf_counter()
    stop_at[0] = loop.time() + duration_s
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - start
    await asyncio.sleep(settle_s)
    return NetSample(sum(counts), elapsed, bytes_per_op, time.process_time() - client_start,
                     cpu_of(server_pids) - server_start)


async def run_warmup(concurrency: int, op: Op, count: int) -> None:
    """``count`` operations spread over ``concurrency`` coroutines, untimed (channels
    open, caches warm)."""
    per = max(1, count // max(1, concurrency))
    await asyncio.gather(*(_repeat(op, w, per) for w in range(concurrency)))


async def _repeat(op: Op, w: int, times: int) -> None:
    for i in range(times):
        await op(w, -1 - i)
