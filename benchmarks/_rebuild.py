"""What repair_bench does to a running cluster: ask each node for its status, wipe one
node's data directory while it runs, watch the rebuild until redundancy is whole, read
objects straight from the rebuilt node, and sample the nodes with py-spy meanwhile.

Nodes are reached with raw ``grpc.aio`` stubs (``AdminService`` and
``ReplicaService.ReplicaGet``), one channel per node, as ``tests/support/cluster.py``
does with blocking ones: the admin calls are not part of the SDK's object API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import crc32c
import grpc
import grpc.aio

from cairn.v1 import admin_pb2, admin_pb2_grpc, replica_pb2, replica_pb2_grpc

from ._procs import cpu_of

POLL_INTERVAL_S: Final = 0.25
TIMELINE_EVERY_S: Final = 5.0
STALL_KICK_S: Final = 10.0
CONFIRM_KICK_EVERY_S: Final = 1.0
CONVERGE_KICK_EVERY_S: Final = 5.0
STUCK_AFTER_S: Final = 30.0
"""After the objects are back, how long redundancy may take to be reported whole before
the partitions still below it are examined (``RebuildWatch.stuck_s``)."""
STATUS_TIMEOUT_S: Final = 5.0
PASSES_AFTER_DATA_BACK: Final = 2
"""Redundancy is called whole only after each node finished this many anti-entropy
passes since the wiped node got its objects back: the pass running at that moment may
have surveyed before it, the next one surveyed after."""


@dataclass(frozen=True, slots=True)
class NodeView:
    """What one node's ``Status`` said (the fields the benchmark uses)."""

    node_id: int
    disk_states: tuple[str, ...]
    object_count: int
    live_bytes: int
    below: int
    bytes_to_copy: int
    passes: int
    rate_bytes_s: int
    objects_pulled: int
    objects_pushed: int
    bytes_copied: int

    @property
    def disks_ok(self) -> bool:
        return all(s == "ok" for s in self.disk_states)


class Admin:
    """One ``grpc.aio`` channel per node for admin calls and ReplicaGet. Make it inside
    the event loop that uses it."""

    def __init__(self, addresses: Mapping[int, str]) -> None:
        self.addresses = dict(addresses)
        self._channels = {n: grpc.aio.insecure_channel(a) for n, a in addresses.items()}
        self._admin = {n: admin_pb2_grpc.AdminServiceStub(c) for n, c in self._channels.items()}
        self._replica = {n: replica_pb2_grpc.ReplicaServiceStub(c)
                         for n, c in self._channels.items()}

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()

    async def status(self, node: int) -> NodeView:
        reply = await self._admin[node].Status(admin_pb2.StatusRequest(),
                                               timeout=STATUS_TIMEOUT_S)
        s = reply.status
        r = s.repair
        return NodeView(s.node_id, tuple(d.state for d in s.disks), s.object_count,
                        sum(d.live_bytes for d in s.disks), r.partitions_below_redundancy,
                        r.bytes_to_copy, r.antientropy_passes, r.rate_bytes_s,
                        r.objects_pulled, r.objects_pushed, r.bytes_copied)

    async def statuses(self) -> dict[int, NodeView]:
        views = await asyncio.gather(*(self.status(n) for n in self.addresses))
        return {v.node_id: v for v in views}

    async def set_rate(self, rate_bytes_s: int) -> None:
        """``SetRepairRate`` on every node (0 = unlimited)."""
        await asyncio.gather(*(self._admin[n].SetRepairRate(
            admin_pb2.SetRepairRateRequest(rate_bytes_s=rate_bytes_s), timeout=STATUS_TIMEOUT_S)
            for n in self.addresses))

    async def kick(self) -> None:
        """``Repair`` (a whole pass, not waited for) on every node."""
        await asyncio.gather(*(self._admin[n].Repair(admin_pb2.RepairRequest(wait=False),
                                                     timeout=STATUS_TIMEOUT_S)
                               for n in self.addresses), return_exceptions=True)

    async def repair_pass(self, node: int) -> dict[str, Any]:
        """One whole anti-entropy pass on ``node``, waited for (``Repair(wait=True)``)."""
        started = time.monotonic()
        reply = await self._admin[node].Repair(admin_pb2.RepairRequest(wait=True), timeout=600)
        return {"node": node, "elapsed_s": round(time.monotonic() - started, 2),
                "partitions_levelled": reply.partitions, "objects_pulled": reply.objects_pulled,
                "objects_pushed": reply.objects_pushed}

    async def repair_partitions(self, node: int, partitions: int, concurrency: int
                                ) -> dict[str, Any]:
        """``Repair(partition=p, wait=True)`` on ``node`` for every partition, at most
        ``concurrency`` at a time: the node levels that many partitions at once (its own
        anti-entropy worker levels one at a time)."""
        sem = asyncio.Semaphore(concurrency)
        pulled, errors = 0, 0
        started = time.monotonic()

        async def one(p: int) -> None:
            nonlocal pulled, errors
            async with sem:
                try:
                    reply = await self._admin[node].Repair(
                        admin_pb2.RepairRequest(partition=p, wait=True), timeout=300)
                except grpc.RpcError:
                    errors += 1
                    return
                pulled += reply.objects_pulled

        await asyncio.gather(*(one(p) for p in range(partitions)))
        return {"partitions": partitions, "concurrency": concurrency,
                "objects_pulled": pulled, "errors": errors,
                "elapsed_s": round(time.monotonic() - started, 2)}

    async def differing_partitions(self, partitions: int, leaf_count: int = 64
                                   ) -> list[dict[str, Any]]:
        """Partitions whose hash-tree roots differ between nodes, each with what every
        node's digest counts and what its listing of the partition actually holds.
        ``stale_digest``: every node lists the same entries, yet the digests differ (a
        cached tree that missed a write)."""
        sem = asyncio.Semaphore(16)
        found: list[dict[str, Any]] = []

        async def digest(node: int, p: int) -> Any:
            return await self._replica[node].PartitionDigest(
                replica_pb2.PartitionDigestRequest(partition=p, leaf_count=leaf_count),
                timeout=STATUS_TIMEOUT_S)

        async def one(p: int) -> None:
            async with sem:
                d = {n: await digest(n, p) for n in self.addresses}
            if len({x.root for x in d.values()}) == 1:
                return
            listed = {n: await self._list(n, p) for n in self.addresses}
            found.append({
                "partition": p,
                "digest_entries": {str(n): x.entries for n, x in d.items()},
                "listed_entries": {str(n): len(v) for n, v in listed.items()},
                "stale_digest": len({tuple(v) for v in listed.values()}) == 1,
            })

        await asyncio.gather(*(one(p) for p in range(partitions)))
        return sorted(found, key=lambda x: x["partition"])

    async def _list(self, node: int, partition: int) -> list[tuple[bytes, bytes, int, int]]:
        out = []
        async for reply in self._replica[node].ListPartition(
                replica_pb2.ListPartitionRequest(partition=partition), timeout=30):
            out += [(o.bucket, o.key, o.version.physical_ms, o.version.logical)
                    for o in reply.objects]
        return out

    async def read_local(self, node: int, bucket: str, key: bytes) -> bytes:
        """The node's own copy of (bucket, key), checked against the checksum the
        stream ends with (``ReplicaGet``: no quorum, no other replica involved)."""
        data = bytearray()
        end = None
        async for part in self._replica[node].ReplicaGet(
                replica_pb2.ReplicaGetRequest(bucket=bucket.encode(), key=key), timeout=60):
            data += part.chunk
            if part.HasField("end"):
                end = part.end
        if end is None or end.checksum != crc32c.crc32c(data):
            raise AssertionError(f"node {node}: {bucket}/{key!r} stream ended without a "
                                 "matching checksum")
        return bytes(data)

    async def wait_converged(self, timeout_s: float, *, stable_polls: int = 3
                             ) -> dict[int, NodeView]:
        """Wait until every node holds the same object count, none sees a partition
        below redundancy, and that held for ``stable_polls`` polls in a row.

        Raises:
            TimeoutError: not converged within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        streak = 0
        last: dict[int, NodeView] = {}
        last_kick = time.monotonic()
        while time.monotonic() < deadline:
            views = await self.statuses()
            counts = {v.object_count for v in views.values()}
            same = len(counts) == 1 and all(v.below == 0 and v.disks_ok for v in views.values())
            streak = streak + 1 if same and (not last or _counts(last) == _counts(views)) else 0
            last = views
            if streak >= stable_polls:
                return views
            if not same and time.monotonic() - last_kick >= CONVERGE_KICK_EVERY_S:
                # Passes run only when asked (the nodes' interval is long): a status
                # saying "below" is as old as the last pass that ended.
                last_kick = time.monotonic()
                await self.kick()
            await asyncio.sleep(0.5)
        raise TimeoutError(f"cluster did not converge in {timeout_s:.0f} s: {last}")


    async def wait_idle(self, quiet_s: float = 2.0, timeout_s: float = 60.0) -> None:
        """Wait until no node has finished an anti-entropy pass for ``quiet_s`` (passes
        queued by ``Repair`` calls have run), at most ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        last = {n: v.passes for n, v in (await self.statuses()).items()}
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            now = {n: v.passes for n, v in (await self.statuses()).items()}
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_s:
                return


def _counts(views: Mapping[int, NodeView]) -> tuple[int, ...]:
    return tuple(v.object_count for _, v in sorted(views.items()))


def wipe(data_dirs: Sequence[Path]) -> None:
    """Remove everything inside each data directory, the directory itself kept (an
    operator's ``rm -rf dir/*`` on a live node)."""
    for directory in data_dirs:
        for entry in directory.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()


@dataclass
class RebuildWatch:
    """What a rebuild looked like from outside, filled in while it runs.

    Times are seconds since the wipe began. ``noticed_s``: the wiped node's disk was
    reported not "ok" (or came back already); ``reopened_s``: it is "ok" again (empty);
    ``data_back_s``: its object count reached ``expected_objects``; ``whole_s``: every
    node then finished ``PASSES_AFTER_DATA_BACK`` anti-entropy passes and sees no
    partition below redundancy. ``stall_kicks``: ``Repair`` calls sent because the
    rebuild had stopped moving. ``stuck_s``: the watch gave up waiting for *whole*
    although every node held the same number of objects.
    """

    node: int
    expected_objects: int
    started: float = field(default_factory=time.monotonic)
    noticed_s: float | None = None
    reopened_s: float | None = None
    data_back_s: float | None = None
    whole_s: float | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    polls: int = 0
    errors: int = 0
    passes_at_data_back: dict[int, int] = field(default_factory=dict)
    peak_bytes_to_copy: int = 0
    peak_below: int = 0
    stall_kicks: int = 0
    stuck_s: float | None = None
    peak_below_s: float = 0.0
    levelled_s: float | None = None

    @property
    def partitions_per_s(self) -> float:
        """How fast the wiped node's count of partitions below redundancy fell, from its
        peak (after its first survey) to 0."""
        if self.levelled_s is None or self.levelled_s <= self.peak_below_s:
            return 0.0
        return self.peak_below / (self.levelled_s - self.peak_below_s)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rebuilding(self) -> bool:
        return self.data_back_s is None


async def watch(admin: Admin, w: RebuildWatch, timeout_s: float, *,
                on_reopen: Callable[[], Any] | None = None) -> None:
    """Poll every node until redundancy is whole again after ``w.node`` was wiped.

    Anti-entropy passes are started by the nodes themselves (a taken-back disk starts
    one; ``antientropy_interval_s`` starts the others) and by ``Repair`` calls: every
    node gets one when the wiped disk is back (``on_reopen``), one again if the wiped
    node's object count has not moved for ``STALL_KICK_S`` (counted in ``w.stall_kicks``:
    a rebuild that needs them would have waited for the next scheduled pass), and, once
    the objects are back, one a second so that the passes which confirm redundancy run
    now rather than at the next interval.

    Raises:
        TimeoutError: not whole within ``timeout_s`` of the wipe.
    """
    next_mark = 0.0
    last_count, last_change, last_kick = -1, 0.0, 0.0
    while True:
        t = w.elapsed()
        if t > timeout_s:
            raise TimeoutError(f"node {w.node} not rebuilt in {timeout_s:.0f} s: {w.timeline[-3:]}")
        try:
            views = await admin.statuses()
        except grpc.RpcError:
            w.errors += 1
            await asyncio.sleep(POLL_INTERVAL_S)
            continue
        w.polls += 1
        me = views[w.node]
        w.peak_bytes_to_copy = max(w.peak_bytes_to_copy, me.bytes_to_copy)
        if w.noticed_s is None and (not me.disks_ok or me.object_count < w.expected_objects):
            w.noticed_s = t
        if w.noticed_s is not None and w.reopened_s is None and me.disks_ok:
            w.reopened_s = last_change = last_kick = t
            if on_reopen is not None:
                await on_reopen()
        if me.object_count != last_count:
            last_count, last_change = me.object_count, t
        if w.data_back_s is None and w.reopened_s is not None:
            if me.object_count >= w.expected_objects:
                w.data_back_s = last_kick = t
                w.passes_at_data_back = {n: v.passes for n, v in views.items()}
                await admin.kick()
            elif t - max(last_change, last_kick) >= STALL_KICK_S:
                w.stall_kicks += 1
                last_kick = t
                await admin.kick()
        elif w.data_back_s is not None and t - last_kick >= CONFIRM_KICK_EVERY_S:
            last_kick = t
            await admin.kick()
        if me.below > w.peak_below:
            w.peak_below, w.peak_below_s = me.below, t
        if w.peak_below and me.below == 0 and w.levelled_s is None:
            w.levelled_s = t
        whole = w.data_back_s is not None and all(
            v.below == 0 and v.disks_ok
            and v.passes >= w.passes_at_data_back[n] + PASSES_AFTER_DATA_BACK
            for n, v in views.items())
        if t >= next_mark or whole or w.data_back_s == t:
            w.timeline.append({"t_s": round(t, 2), "objects": me.object_count,
                               "live_bytes": me.live_bytes,
                               "below": {n: v.below for n, v in views.items()},
                               "passes": {n: v.passes for n, v in views.items()},
                               "bytes_to_copy": me.bytes_to_copy})
            next_mark = t + TIMELINE_EVERY_S
        if whole:
            w.whole_s = t
            return
        if w.data_back_s is not None and t - w.data_back_s >= STUCK_AFTER_S and \
                len({v.object_count for v in views.values()}) == 1:
            w.stuck_s = t  # every node holds every object, yet some partition never levels
            return
        await asyncio.sleep(POLL_INTERVAL_S)


def _pressure_totals() -> dict[str, int]:
    """Microseconds some task waited for CPU and for I/O since boot (Linux PSI)."""
    out = {}
    for kind in ("cpu", "io"):
        try:
            with open(f"/proc/pressure/{kind}", encoding="ascii") as f:
                some = f.readline().split()
            out[kind] = int(some[-1].split("=")[1])
        except (OSError, IndexError, ValueError):
            pass
    return out


class Pressure:
    """Share of wall time in which some task of this machine (any container) waited for
    a CPU, or for I/O, between ``start()`` and ``stop()``: how contended the shared
    machine was while a figure was taken."""

    def __init__(self) -> None:
        self._at: dict[str, int] = {}
        self._t = 0.0

    def start(self) -> Pressure:
        self._at, self._t = _pressure_totals(), time.monotonic()
        return self

    def stop(self) -> dict[str, float]:
        elapsed_us = (time.monotonic() - self._t) * 1e6
        now = _pressure_totals()
        return {f"{k}_some_pct": round(100 * (now[k] - self._at[k]) / elapsed_us, 1)
                for k in now if k in self._at and elapsed_us > 0}


class CpuMeter:
    """CPU seconds of each node process between ``start()`` and ``stop()``."""

    def __init__(self, pids: Mapping[int, int]) -> None:
        self.pids = dict(pids)
        self._at: dict[int, float] = {}
        self._t = 0.0
        self.cpu_s: dict[int, float] = {}
        self.elapsed_s = 0.0

    def start(self) -> CpuMeter:
        self._at = {n: cpu_of([p]) for n, p in self.pids.items()}
        self._t = time.monotonic()
        return self

    def stop(self) -> dict[str, Any]:
        self.elapsed_s = time.monotonic() - self._t
        self.cpu_s = {n: cpu_of([p]) - self._at[n] for n, p in self.pids.items()}
        return {"elapsed_s": round(self.elapsed_s, 2),
                "cpu_s": {str(n): round(c, 2) for n, c in self.cpu_s.items()},
                "cores": {str(n): round(c / self.elapsed_s, 2) if self.elapsed_s else 0.0
                          for n, c in self.cpu_s.items()}}


class PySpy:
    """``py-spy record --gil`` on each node process: only the thread holding the GIL is
    sampled, so the profile says where the interpreter's time goes (``--threads``,
    ``-f raw``; ``--nonblocking``: the node is not paused for each sample, which halved
    the rebuild's speed). Stopped with SIGINT so it writes its profile."""

    def __init__(self, pids: Mapping[int, int], out_dir: str, tag: str, rate_hz: int = 100
                 ) -> None:
        self.pids = dict(pids)
        self.paths = {n: os.path.join(out_dir, f"{tag}-node{n}.txt") for n in pids}
        self.rate_hz = rate_hz
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    @staticmethod
    def binary() -> str | None:
        import sys

        beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
        return beside if os.path.exists(beside) else shutil.which("py-spy")

    def start(self) -> PySpy:
        exe = self.binary()
        if exe is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        for n, pid in self.pids.items():
            self._procs[n] = subprocess.Popen(
                [exe, "record", "--pid", str(pid), "-r", str(self.rate_hz), "-f", "raw",
                 "--gil", "--nonblocking", "--threads", "-o", self.paths[n]],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def stop(self) -> dict[int, str]:
        """The profiles written, by node."""
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self._procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
        self._procs = {}
        return {n: p for n, p in self.paths.items() if os.path.exists(p)}
