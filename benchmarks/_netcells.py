"""Cells shared by sdk_bench and cluster_bench: one operation, one size, one concurrency,
through the SDK (``cairn.AsyncClient``, or ``cairn.Client`` from threads) or through a
floor (``_rpc_floor.FloorClient``), timed by ``_load``.

Small operations: ``put`` (``AsyncClient.put`` of raw bytes: one unary PutSmall) and
``get`` (``AsyncClient.get`` of a prefilled key: one unary GetSmall). Large ones:
``upload`` / ``download`` (a file on disk, streamed in 1 MiB chunks; a download is
verified, fsynced and renamed into place by the SDK) and ``put`` / ``get`` of a value
held in memory (streamed too). Every client is made inside the cell and warmed up
before the clock starts.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import cairn

from . import _load
from ._load import NetSample
from ._procs import cpu_of
from ._rpc_floor import FloorClient
from ._timing import run_threads

BUCKET: Final = "bench"
WARMUP_OPS: Final = 64
CLIENT_TIMEOUT_S: Final = 120.0


def value_of(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def get_key(size: int, i: int) -> str:
    return f"get-{size}-{i:06d}"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a cell's requests go and whose CPU is measured."""

    seeds: tuple[str, ...]
    pids: tuple[int, ...]
    consistency: str | None = None  # the SDK's default (quorum) unless set


async def ensure_bucket(seeds: Sequence[str]) -> None:
    """Create the benchmark's bucket unless it exists."""
    async with cairn.AsyncClient(list(seeds), timeout=CLIENT_TIMEOUT_S) as client:
        if BUCKET not in await client.list_buckets():
            await client.create_bucket(BUCKET)


async def prefill(seeds: Sequence[str], size: int, keys: int, concurrency: int = 16) -> None:
    """Put ``keys`` objects of ``size`` bytes under ``get_key(size, i)`` (creating the
    bucket if needed)."""
    await ensure_bucket(seeds)
    value = value_of(size)
    async with cairn.AsyncClient(list(seeds), timeout=CLIENT_TIMEOUT_S) as client:
        queue = list(range(keys))

        async def worker() -> None:
            while queue:
                i = queue.pop()
                await client.put(BUCKET, get_key(size, i), value)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


async def sdk_small(target: Target, op: str, size: int, concurrency: int, duration_s: float,
                    *, tag: str, get_keys: int) -> NetSample:
    """``put`` new keys ``tag-w-i``, or ``get`` random prefilled keys, through AsyncClient."""
    value = value_of(size)
    async with cairn.AsyncClient(list(target.seeds), timeout=CLIENT_TIMEOUT_S,
                                 consistency=target.consistency) as client:  # type: ignore[arg-type]
        if op == "put":
            async def run(w: int, i: int) -> None:
                await client.put(BUCKET, f"{tag}-{w}-{i}", value)
        elif op == "get":
            rngs = [random.Random(w) for w in range(concurrency)]

            async def run(w: int, i: int) -> None:
                got = await client.get(BUCKET, get_key(size, rngs[w].randrange(get_keys)))
                if len(got) != size:
                    raise AssertionError(f"get returned {len(got)} bytes, not {size}")
        else:
            raise ValueError(op)
        await _load.run_warmup(concurrency, run, max(WARMUP_OPS, concurrency))
        return await _load.run_load(concurrency, run, duration_s, target.pids, size)


def sdk_sync_small(target: Target, op: str, size: int, threads: int, duration_s: float,
                   *, tag: str, get_keys: int) -> NetSample:
    """The same with the blocking ``cairn.Client`` shared by ``threads`` threads."""
    value = value_of(size)
    local = threading.local()
    with cairn.Client(list(target.seeds), timeout=CLIENT_TIMEOUT_S) as client:
        def run(w: int, i: int) -> None:
            if op == "put":
                client.put(BUCKET, f"{tag}-{w}-{i}", value)
                return
            rng = getattr(local, "rng", None) or random.Random(w)
            local.rng = rng
            got = client.get(BUCKET, get_key(size, rng.randrange(get_keys)))
            if len(got) != size:
                raise AssertionError(f"get returned {len(got)} bytes, not {size}")

        run_threads(threads, lambda w, i: run(w, -1 - i), min(1.0, duration_s / 4))  # warm up
        server_start = cpu_of(target.pids)
        sample = run_threads(threads, run, duration_s)
        time.sleep(_load.SETTLE_S)
        return NetSample(sample.ops, sample.elapsed_s, size, sample.cpu_s,
                         cpu_of(target.pids) - server_start)


async def floor_small(address: str, pids: Sequence[int], op: str, size: int,
                      concurrency: int, duration_s: float, *, unary: bool = False
                      ) -> NetSample:
    """The same payloads through a floor server (``unary``: the front's PutUnary/GetUnary)."""
    client = FloorClient(address)
    payload = value_of(size)
    try:
        if op == "put":
            async def run(w: int, i: int) -> None:
                await client.put(payload, unary=unary)
        elif op == "get":
            async def run(w: int, i: int) -> None:
                await client.get(size, unary=unary)
        else:
            raise ValueError(op)
        await _load.run_warmup(concurrency, run, max(WARMUP_OPS, concurrency))
        return await _load.run_load(concurrency, run, duration_s, pids, size)
    finally:
        await client.close()


def make_source_file(directory: str, size: int) -> str:
    """A file of ``size`` random bytes to upload (written once, then in the page cache)."""
    path = os.path.join(directory, f"source-{size}.bin")
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 20))
            f.write(block)
            left -= len(block)
    return path


def large_key(size: int) -> str:
    return f"large-{size}"


async def prefill_large(seeds: Sequence[str], source_path: str, size: int) -> None:
    """Upload the object that large downloads and gets read (``large_key(size)``)."""
    await ensure_bucket(seeds)
    async with cairn.AsyncClient(list(seeds), timeout=CLIENT_TIMEOUT_S) as client:
        await client.upload(BUCKET, large_key(size), source_path)


async def sdk_large(target: Target, op: str, size: int, duration_s: float, *, tag: str,
                    source_path: str, scratch_dir: str, min_ops: int = 2) -> NetSample:
    """One stream at a time: ``upload`` a file, ``download`` one (to a path), or ``put``
    / ``get`` a value in memory. Downloads and gets read ``large_key(size)``, which
    ``prefill_large`` wrote."""
    async with cairn.AsyncClient(list(target.seeds), timeout=CLIENT_TIMEOUT_S) as client:
        src_key = large_key(size)
        run: Callable[[int, int], Any]
        if op == "upload":
            async def run(w: int, i: int) -> None:
                await client.upload(BUCKET, f"{tag}-{i}", source_path)
        elif op == "put":
            value = await asyncio.to_thread(_read_file, source_path)

            async def run(w: int, i: int) -> None:
                await client.put(BUCKET, f"{tag}-{i}", value)
        elif op == "download":
            out = os.path.join(scratch_dir, f"{tag}.bin")

            async def run(w: int, i: int) -> None:
                info = await client.download(BUCKET, src_key, out)
                if info.size != size:
                    raise AssertionError(f"downloaded {info.size} bytes, not {size}")
        elif op == "get":
            async def run(w: int, i: int) -> None:
                got = await client.get_bytes(BUCKET, src_key)
                if len(got) != size:
                    raise AssertionError(f"get returned {len(got)} bytes, not {size}")
        else:
            raise ValueError(op)
        await run(0, -1)  # warm up
        return await _load.run_load(1, run, duration_s, target.pids, size, min_ops=min_ops)


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


async def floor_large(address: str, pids: Sequence[int], op: str, size: int,
                      duration_s: float, *, min_ops: int = 2) -> NetSample:
    """One stream at a time through a floor server: ``upload`` or ``download``."""
    client = FloorClient(address)
    try:
        if op == "upload":
            async def run(w: int, i: int) -> None:
                await client.upload(size)
        elif op == "download":
            async def run(w: int, i: int) -> None:
                await client.download(size)
        else:
            raise ValueError(op)
        await run(0, -1)
        return await _load.run_load(1, run, duration_s, pids, size, min_ops=min_ops)
    finally:
        await client.close()


FLOOR_OP: Final = {"upload": "upload", "download": "download", "put": "upload",
                   "get": "download"}
"""The floor a large SDK operation is compared with."""
