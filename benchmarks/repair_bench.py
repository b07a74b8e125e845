"""Rebuilding a wiped node: time to full redundancy, its MiB/s beside the single-stream
floor of this machine, and what a rebuild costs foreground traffic, all in one run.

    python -m benchmarks.repair_bench [--quick] [--gib 2] [--dir DIR] [--out JSON]
                                      [--profile-dir DIR]

One run, in a fresh directory on the disk being measured (refused if tmpfs):

1. starts a local three-node cluster (``LocalCluster(nodes=3)``: N = 3, W = 2, R = 2,
   sync "always"; every node holds a replica of every partition) with default node
   settings (repair rate 64 MiB/s; anti-entropy every 600 s, so passes run when a node
   takes a disk back and when this benchmark sends ``Repair``; ``--antientropy-interval``
   sets ``CAIRN_ANTIENTROPY_INTERVAL_S`` instead), loads ``--gib`` of objects through
   ``cairn.AsyncClient`` (16 in flight; by count 70 % 64 KiB, 25 % 1 MiB, 5 % 16 MiB, so
   most bytes are in 16 MiB objects) and the foreground keys, and waits until every node
   holds every object; then times one anti-entropy pass over the in-sync cluster;
2. measures foreground PUT and GET of 4 KiB and 64 KiB objects at concurrency 16
   (``AsyncClient``) on the converged cluster, in rounds around the rebuilds: the
   "normal" figures;
3. measures the single-stream floor (``_stream_floor``): one gRPC stream of 1 MiB
   messages between two processes on 127.0.0.1 moving as many bytes as were loaded,
   written to disk with an fsync every 8 MiB, and without the disk (rounds around the
   unlimited rebuild);
4. wipes one node's data directory while it runs (``rm -rf DIR/*``, node 3 unless
   ``--wipe-node``) and times, from the wipe, until the node noticed, reopened its empty
   disk, held every object again, and every node's status showed no partition below
   redundancy after two more anti-entropy passes (see ``_rebuild.watch`` for the
   ``Repair`` calls it sends). Rebuilds: at the default rate with no other traffic; at
   the default rate with the foreground cells of step 2 running in turn throughout (the
   cells that ended before the wiped node held its objects again count as "during
   repair"); at unlimited rate (``SetRepairRate`` 0 on every node); and a what-if, the
   unlimited one while this benchmark also asks the wiped node to level 16 partitions at
   once (``Repair(partition)`` calls; ``--probe 0`` skips it). After each rebuild, objects
   of every size are read straight from the rebuilt node (``ReplicaGet``) and compared
   byte for byte. A partition that never levels although every node holds the same
   objects is examined, recorded under ``stuck`` and healed (``Bench._heal``);
5. with ``--profile-dir``: one more unlimited rebuild with ``py-spy record --gil`` on every
   node, summed by function into the JSON and the report.

Goals: unlimited rebuild >= 0.5 of the floor with disk; foreground ops/s during a
default-rate rebuild >= 0.7 of normal. A full run (about 6-8 minutes on a quiet machine,
2 GiB) rewrites the generated block of the "Repair and rebuild" section of
benchmarks/RESULTS.md; ``--quick`` (200 MiB, about 2 minutes) only prints.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Final

import cairn
from cairn.cluster.launcher import LocalCluster
from cairn.cluster.placement import partition_of

from . import _load
from . import _netbench as nb
from . import _repair_report as report
from . import _stream_floor as floor
from ._load import NetSample
from ._netbench import KiB, MiB
from ._rebuild import Admin, CpuMeter, Pressure, PySpy, RebuildWatch, wipe
from ._rebuild import watch as watch_rebuild

SECTION: Final = "Repair and rebuild"
MARKER: Final = "repair_bench"
BUCKET: Final = "repair"
FG_BUCKET: Final = "repairfg"
CLIENT_TIMEOUT_S: Final = 120.0
WARMUP_OPS: Final = 64
CONVERGE_TIMEOUT_S: Final = 180.0


@dataclass(frozen=True, slots=True)
class Plan:
    """What one run measures."""

    data_bytes: int = 2 * 1024 * MiB
    mix: tuple[tuple[int, float], ...] = ((64 * KiB, 0.70), (MiB, 0.25), (16 * MiB, 0.05))
    load_concurrency: int = 16
    fg_sizes: tuple[int, ...] = (4 * KiB, 64 * KiB)
    fg_concurrency: int = 16
    fg_duration_s: float = 2.0
    fg_repeats: int = 4  # rounds without repair, around the rebuilds
    fg_get_keys: int = 256
    fg_put_keys: int = 64
    """Foreground PUTs overwrite this many keys per coroutine (prefilled), so the data a
    rebuild must copy does not grow with every PUT cell (old versions are dead bytes)."""
    floor_repeats: int = 3
    antientropy_interval_s: float | None = None
    """CAIRN_ANTIENTROPY_INTERVAL_S of the nodes; None keeps the node default (600 s): a
    short interval makes every node survey all its partitions every few seconds, which
    is a load of its own on the cluster the foreground cells measure."""
    wipe_node: int = 3
    spot_checks: int = 8  # objects of each size read back from the rebuilt node
    rebuild_timeout_s: float = 900.0
    seed: int = 5
    partitions: int | None = None  # None: the cluster default (1024)
    probe_concurrency: int = 16
    """The what-if rebuild: partitions levelled at once through ``Repair(partition)``
    calls from outside (0 skips it)."""


QUICK: Final = Plan(data_bytes=200 * MiB, fg_duration_s=1.0, fg_repeats=2, floor_repeats=1,
                    fg_put_keys=16, spot_checks=4, rebuild_timeout_s=300.0,
                    probe_concurrency=0)

FG_CELLS: Final = ("put", "get")


# --------------------------------------------------------------------------- data set


class DataSet:
    """The objects loaded: sizes by a seeded shuffle of the mix, values made again on
    demand from a random pool (so a spot check needs nothing kept in memory)."""

    def __init__(self, plan: Plan) -> None:
        avg = sum(size * share for size, share in plan.mix)
        total = max(1, round(plan.data_bytes / avg))
        sizes: list[int] = []
        for size, share in plan.mix:
            sizes += [size] * max(1, round(total * share))
        random.Random(plan.seed).shuffle(sizes)
        self.objects = [(f"obj-{nb.size_name(s).replace(' ', '')}-{i:06d}", s)
                        for i, s in enumerate(sizes)]
        self.total_bytes = sum(sizes)
        biggest = max(s for s, _ in plan.mix)
        self._pool = random.Random(plan.seed).randbytes(biggest + 64 * KiB)

    def value(self, index: int) -> bytes:
        key, size = self.objects[index]
        stamp = key.encode().ljust(32, b".")[:32]
        offset = (index * 4099) % (64 * KiB)
        return (stamp + self._pool[offset:offset + size])[:size]

    def by_size(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i, (_key, size) in enumerate(self.objects):
            out.setdefault(size, []).append(i)
        return out


async def load(seeds: Sequence[str], data: DataSet, concurrency: int) -> dict[str, Any]:
    """Put every object of ``data`` (``concurrency`` in flight)."""
    async with cairn.AsyncClient(list(seeds), timeout=CLIENT_TIMEOUT_S) as client:
        for bucket in (BUCKET, FG_BUCKET):
            if bucket not in await client.list_buckets():
                await client.create_bucket(bucket)
        todo = list(range(len(data.objects)))
        todo.reverse()
        started = time.perf_counter()

        async def worker() -> None:
            while todo:
                i = todo.pop()
                await client.put(BUCKET, data.objects[i][0], data.value(i))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"objects": len(data.objects), "bytes": data.total_bytes,
            "elapsed_s": round(elapsed, 2),
            "mib_s": round(data.total_bytes / MiB / elapsed, 1)}


# --------------------------------------------------------------------------- foreground


def fg_value(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def fg_get_key(size: int, i: int) -> str:
    return f"get-{size}-{i:05d}"


async def prefill_foreground(seeds: Sequence[str], plan: Plan) -> None:
    """Put the keys the foreground GETs read and the keys its PUTs overwrite, so that
    PUTs during a rebuild change no node's object count."""
    keys = [(fg_get_key(size, i), size) for size in plan.fg_sizes
            for i in range(plan.fg_get_keys)]
    keys += [(fg_put_key(size, w, i, plan), size) for size in plan.fg_sizes
             for w in range(plan.fg_concurrency) for i in range(plan.fg_put_keys)]
    values = {size: fg_value(size) for size in plan.fg_sizes}
    async with cairn.AsyncClient(list(seeds), timeout=CLIENT_TIMEOUT_S) as client:
        async def worker() -> None:
            while keys:
                key, size = keys.pop()
                await client.put(FG_BUCKET, key, values[size])

        await asyncio.gather(*(worker() for _ in range(plan.fg_concurrency)))


def fg_put_key(size: int, worker: int, i: int, plan: Plan) -> str:
    return f"put-{size}-{worker}-{i % plan.fg_put_keys}"


async def fg_cell(seeds: Sequence[str], pids: Sequence[int], op: str, size: int, plan: Plan
                  ) -> NetSample:
    """One foreground cell: ``put`` (overwriting a bounded key set) or ``get`` (random
    prefilled keys), ``plan.fg_concurrency`` coroutines on one AsyncClient."""
    value = fg_value(size)
    conc = plan.fg_concurrency
    async with cairn.AsyncClient(list(seeds), timeout=CLIENT_TIMEOUT_S) as client:
        if op == "put":
            async def run(w: int, i: int) -> None:
                await client.put(FG_BUCKET, fg_put_key(size, w, i, plan), value)
        else:
            rngs = [random.Random(w) for w in range(conc)]

            async def run(w: int, i: int) -> None:
                got = await client.get(FG_BUCKET,
                                       fg_get_key(size, rngs[w].randrange(plan.fg_get_keys)))
                if len(got) != size:
                    raise AssertionError(f"get returned {len(got)} bytes, not {size}")
        await _load.run_warmup(conc, run, max(WARMUP_OPS, conc))
        return await _load.run_load(conc, run, plan.fg_duration_s, pids, size)


def heal_key(partition: int, partitions: int) -> str:
    """A key of ``FG_BUCKET`` that falls into ``partition``."""
    for i in itertools.count():
        key = f"heal-{partition}-{i}"
        if partition_of(FG_BUCKET, key, partitions) == partition:
            return key
    raise AssertionError("unreachable")


def _cells(plan: Plan) -> list[tuple[str, int]]:
    return [(op, size) for op in FG_CELLS for size in plan.fg_sizes]


# --------------------------------------------------------------------------- the bench


class Bench:
    def __init__(self, plan: Plan, seeds: Sequence[str], pids: dict[int, int],
                 data_dirs: dict[int, Any], base: str, profile_dir: str | None,
                 partitions: int) -> None:
        self.plan = plan
        self.partitions = partitions
        self.seeds = list(seeds)
        self.pids = pids
        self.data_dirs = data_dirs
        self.base = base
        self.profile_dir = profile_dir
        self.data = DataSet(plan)
        self.out: dict[str, Any] = {"baseline": [], "during": [], "rebuilds": [], "floor": [],
                                    "stuck": []}

    async def run(self) -> dict[str, Any]:
        plan = self.plan
        admin = Admin({n: a for n, a in zip(sorted(self.pids), self.seeds, strict=True)})
        disk = floor.Receiver(self.base, os.path.join(self.base, "floor-disk.log"))
        mem = floor.Receiver(None, os.path.join(self.base, "floor-memory.log"))
        try:
            disk.start()
            mem.start()
            nb.log(f"loading {len(self.data.objects)} objects, "
                   f"{self.data.total_bytes / MiB:,.0f} MiB")
            self.out["load"] = await load(self.seeds, self.data, plan.load_concurrency)
            nb.log(f"  loaded in {self.out['load']['elapsed_s']} s "
                   f"({self.out['load']['mib_s']} MiB/s)")
            await prefill_foreground(self.seeds, plan)
            await self._in_sync_pass(admin)
            # The shared machine's load drifts: the no-repair rounds bracket the rebuild
            # that runs the foreground cells, and the floor rounds bracket the unlimited
            # rebuild, so each comparison is made under about the same conditions.
            await self._baseline(admin, 2)
            await self._floor(disk, mem, 2)
            await self._rebuild(admin, "default", rate=None, foreground=False)
            await self._baseline(admin, 0)
            await self._rebuild(admin, "default+foreground", rate=None, foreground=True)
            await self._baseline(admin, 1)
            await self._floor(disk, mem, 0)
            await self._rebuild(admin, "unlimited", rate=0, foreground=False)
            if plan.probe_concurrency:
                await self._rebuild(admin, f"unlimited+{plan.probe_concurrency} partitions at "
                                    "once", rate=0, foreground=False,
                                    probe=plan.probe_concurrency)
            await self._floor(disk, mem, 1)
            for rnd in range(3, plan.fg_repeats):
                await self._baseline(admin, rnd)
            for rnd in range(3, plan.floor_repeats):
                await self._floor(disk, mem, rnd)
            if self.profile_dir:
                await self._rebuild(admin, "unlimited+py-spy", rate=0, foreground=False,
                                    profile=True)
        finally:
            disk.stop()
            mem.stop()
            await admin.close()
        return self.out

    async def _converge(self, admin: Admin, phase: str) -> None:
        """Wait until the replicas agree. If every node holds the same objects but some
        partition still differs, find it, record it, and heal it (see ``_heal``)."""
        try:
            await admin.wait_converged(CONVERGE_TIMEOUT_S / 3)
            return
        except TimeoutError:
            views = await admin.statuses()
            if len({v.object_count for v in views.values()}) != 1:
                raise
        await self._heal(admin, phase)
        try:
            await admin.wait_converged(CONVERGE_TIMEOUT_S)
        except TimeoutError:
            left = await admin.differing_partitions(self.partitions)
            nb.log(f"  {phase}: still not converged; partitions that differ: {left}")
            raise

    async def _heal(self, admin: Admin, phase: str) -> list[dict[str, Any]]:
        """Partitions whose hash trees differ although the nodes hold the same objects
        never level by themselves (nothing is copied, so nothing invalidates the cached
        tree). One new object put into each such partition invalidates its trees on
        every replica. Each occurrence is recorded in ``stuck``: it is a finding."""
        found = await admin.differing_partitions(self.partitions)
        keys = []
        async with cairn.AsyncClient(self.seeds, timeout=CLIENT_TIMEOUT_S) as client:
            for f in found:
                key = heal_key(f["partition"], self.partitions)
                await client.put(FG_BUCKET, key, b"heal")
                keys.append(key)
        self.out["stuck"].append({"phase": phase, "partitions": found, "healed_with": keys})
        nb.log(f"  {phase}: partitions that never level: {found}; healed by putting {keys}")
        return found

    async def _in_sync_pass(self, admin: Admin) -> None:
        """What one anti-entropy pass costs when every replica is level already."""
        await self._converge(admin, "before the in-sync pass")
        await admin.repair_pass(1)  # digests of every partition computed and cached
        cpu = CpuMeter(self.pids).start()
        result = await admin.repair_pass(1)
        result["node_cpu"] = cpu.stop()
        result["partitions"] = self.partitions
        self.out["in_sync_pass"] = result
        nb.log(f"in-sync anti-entropy pass on node 1: {result['elapsed_s']} s, node CPU "
               f"{result['node_cpu']['cpu_s']} s")

    async def _baseline(self, admin: Admin, rnd: int) -> None:
        if rnd >= self.plan.fg_repeats:
            return
        await self._converge(admin, f"before foreground round {rnd + 1}")
        await admin.wait_idle()
        nb.log(f"foreground without repair, round {rnd + 1} of {self.plan.fg_repeats}")
        for op, size in _cells(self.plan):
            await self._fg(op, size, rnd, "baseline")

    async def _fg(self, op: str, size: int, rep: int, phase: str,
                  w: RebuildWatch | None = None) -> None:
        pressure = Pressure().start()
        sample = await fg_cell(self.seeds, list(self.pids.values()), op, size, self.plan)
        row = {"op": op, "size_bytes": size, "repeat": rep, **sample.as_dict(),
               "loadavg_1m": round(os.getloadavg()[0], 1), **pressure.stop()}
        if w is not None:
            row["during_repair"] = not (w.data_back_s is not None)
            row["ended_s"] = round(w.elapsed(), 2)
        self.out[phase].append(row)
        flag = "" if w is None else ("  (during repair)" if row["during_repair"] else
                                     "  (ended after the rebuild: not counted)")
        nb.log(f"  {op:4} {nb.size_name(size):>6} x{self.plan.fg_concurrency} "
               f"{sample.ops_s:8,.0f} ops/s{flag}")

    async def _floor(self, disk: floor.Receiver, mem: floor.Receiver, rnd: int) -> None:
        if rnd >= self.plan.floor_repeats:
            return
        total = self.data.total_bytes
        nb.log(f"single-stream floor, {total / MiB:,.0f} MiB per stream, round {rnd + 1}")
        for name, recv in (("disk", disk), ("memory", mem)):
            load_avg = os.getloadavg()[0]
            pressure = Pressure().start()
            sample = await floor.send(recv.address, total, recv.pid)
            self.out["floor"].append({"variant": name, "round": rnd, **sample.as_dict(),
                                      "loadavg_1m": round(load_avg, 1), **pressure.stop()})
            nb.log(f"  {name:6} {sample.mib_s:8,.1f} MiB/s "
                   f"(receiver CPU {sample.receiver_cpu_s:.1f} s)")

    async def _rebuild(self, admin: Admin, name: str, *, rate: int | None, foreground: bool,
                       profile: bool = False, probe: int = 0) -> None:
        plan, node = self.plan, self.plan.wipe_node
        await self._converge(admin, f"before rebuild '{name}'")
        await admin.wait_idle()
        before = await admin.statuses()
        default_rate = before[node].rate_bytes_s
        if rate is not None:
            await admin.set_rate(rate)
        held = before[node]
        nb.log(f"rebuild '{name}': wiping node {node} ({held.object_count:,} objects, "
               f"{held.live_bytes / MiB:,.0f} MiB), repair rate "
               f"{'unlimited' if rate == 0 else f'{default_rate / MiB:.0f} MiB/s'}")
        spy = PySpy(self.pids, self.profile_dir, name.replace("+", "-")).start() \
            if profile and self.profile_dir else None
        cpu = CpuMeter(self.pids).start()
        pressure = Pressure().start()
        w = RebuildWatch(node, held.object_count)
        load_at_wipe = os.getloadavg()[0]
        wipe(self.data_dirs[node])
        probes: list[asyncio.Future[dict[str, Any]]] = []

        async def reopened() -> None:
            await admin.kick()
            if probe:
                probes.append(asyncio.ensure_future(
                    admin.repair_partitions(node, self.partitions, probe)))

        watcher = asyncio.ensure_future(watch_rebuild(admin, w, plan.rebuild_timeout_s,
                                                      on_reopen=reopened))
        try:
            rep = 0
            while foreground and w.rebuilding and not watcher.done():
                for op, size in _cells(plan):
                    if not w.rebuilding:
                        break
                    await self._fg(op, size, rep, "during", w)
                rep += 1
            await watcher
            probe_result = await probes[0] if probes else None
        finally:
            for task in (watcher, *probes):
                if not task.done():
                    task.cancel()
            cpu_used = cpu.stop()
            machine_pressure = pressure.stop()
            profiles = spy.stop() if spy is not None else {}
            if rate is not None:
                await admin.set_rate(default_rate)
        stuck = await self._heal(admin, f"rebuild '{name}'") if w.stuck_s is not None else []
        after = await admin.statuses()
        checked = await self._spot_check(admin, node)
        result = {
            "name": name, "node": node, "loadavg_1m_at_wipe": round(load_at_wipe, 1),
            "pressure": machine_pressure,
            "rate_bytes_s": default_rate if rate is None else rate,
            "foreground": foreground, "objects_before": held.object_count,
            "live_bytes_before": held.live_bytes, "objects_after": after[node].object_count,
            "live_bytes_after": after[node].live_bytes,
            "noticed_s": _r(w.noticed_s), "reopened_s": _r(w.reopened_s),
            "data_back_s": _r(w.data_back_s), "whole_s": _r(w.whole_s),
            "polls": w.polls, "poll_errors": w.errors, "timeline": w.timeline,
            "stall_kicks": w.stall_kicks, "stuck_s": _r(w.stuck_s), "stuck": stuck,
            "peak_bytes_to_copy": w.peak_bytes_to_copy, "node_cpu": cpu_used,
            "peak_below": w.peak_below, "peak_below_s": _r(w.peak_below_s),
            "levelled_s": _r(w.levelled_s), "partitions_per_s": round(w.partitions_per_s, 1),
            "copied": {str(n): {"objects_pulled": after[n].objects_pulled
                                - before[n].objects_pulled,
                                "objects_pushed": after[n].objects_pushed
                                - before[n].objects_pushed,
                                "bytes_copied": after[n].bytes_copied - before[n].bytes_copied}
                       for n in after},
            "spot_check": checked, "probe": probe_result,
            "profiles": {str(n): p for n, p in profiles.items()},
        }
        self.out["rebuilds"].append(result)
        copy_s = (w.data_back_s or 0) - (w.reopened_s or 0)
        whole = f"{w.whole_s:.1f} s" if w.whole_s is not None else \
            f"never ({len(stuck)} partition(s) stuck, see 'stuck')"
        nb.log(f"  noticed {w.noticed_s:.2f} s, reopened {w.reopened_s:.2f} s, objects back "
               f"{w.data_back_s:.1f} s ({held.live_bytes / MiB / max(copy_s, 1e-9):,.1f} MiB/s "
               f"after reopen), whole {whole}; spot check {checked['ok']}/"
               f"{checked['checked']} byte-exact")

    async def _spot_check(self, admin: Admin, node: int) -> dict[str, Any]:
        """Read objects of each size straight from ``node`` and compare them."""
        rng = random.Random(self.plan.seed + node)
        picked: list[int] = []
        for indexes in self.data.by_size().values():
            picked += rng.sample(indexes, min(self.plan.spot_checks, len(indexes)))
        bad: list[str] = []
        for i in picked:
            key = self.data.objects[i][0]
            try:
                got = await admin.read_local(node, BUCKET, key.encode())
            except Exception as exc:  # a failed read is a finding, reported
                bad.append(f"{key}: {exc!r}")
                continue
            if got != self.data.value(i):
                bad.append(f"{key}: {len(got)} bytes, not the bytes put")
        return {"checked": len(picked), "ok": len(picked) - len(bad), "bad": bad[:10]}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


# --------------------------------------------------------------------------- entry point


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.repair_bench",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="200 MiB, short cells (~2 minutes)")
    p.add_argument("--gib", type=float, help="object data to load, GiB (default 2)")
    p.add_argument("--mib", type=float, help="object data to load, MiB (instead of --gib)")
    p.add_argument("--dir", help="base directory on the disk to measure (default: a temp "
                                 "dir under $TMPDIR or /tmp, refused if that is tmpfs)")
    p.add_argument("--out", help="write the full results as JSON here")
    p.add_argument("--results", help="markdown file to update (default: benchmarks/RESULTS.md "
                                     "for a full run, nothing for --quick)")
    p.add_argument("--no-results", action="store_true", help="do not touch any RESULTS.md")
    p.add_argument("--profile-dir", help="add an unlimited rebuild under py-spy; profiles go "
                                         "here")
    p.add_argument("--duration", type=float, help="seconds per foreground cell")
    p.add_argument("--repeats", type=int, help="foreground repeats without repair")
    p.add_argument("--floor-repeats", type=int, help="single-stream floor repeats")
    p.add_argument("--get-keys", type=int, help="objects per size for foreground GETs")
    p.add_argument("--put-keys", type=int, help="keys per coroutine foreground PUTs overwrite")
    p.add_argument("--spot-checks", type=int, help="objects per size read back after rebuild")
    p.add_argument("--wipe-node", type=int, help="which node is wiped (default 3)")
    p.add_argument("--antientropy-interval", type=float,
                   help="CAIRN_ANTIENTROPY_INTERVAL_S for the nodes (default: the node's, "
                        "600 s; passes are started with Repair calls)")
    p.add_argument("--probe", type=int, help="partitions levelled at once in the what-if "
                                             "rebuild (0 skips it; default 16, --quick 0)")
    p.add_argument("--partitions", type=int, help="partitions of the cluster (default: the "
                                                  "cluster default, 1024)")
    return p.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else Plan()
    changes: dict[str, Any] = {}
    if args.gib is not None:
        changes["data_bytes"] = int(args.gib * 1024 * MiB)
    if args.mib is not None:
        changes["data_bytes"] = int(args.mib * MiB)
    for arg, name in (("duration", "fg_duration_s"), ("repeats", "fg_repeats"),
                      ("floor_repeats", "floor_repeats"), ("get_keys", "fg_get_keys"),
                      ("put_keys", "fg_put_keys"),
                      ("spot_checks", "spot_checks"), ("wipe_node", "wipe_node"),
                      ("partitions", "partitions"), ("probe", "probe_concurrency"),
                      ("antientropy_interval", "antientropy_interval_s")):
        if getattr(args, arg) is not None:
            changes[name] = getattr(args, arg)
    return replace(plan, **changes)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the result that ``--out`` writes."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    plan = make_plan(args)
    base = nb.base_dir(args.dir, "cairn-repair-bench-")
    if args.profile_dir:
        os.makedirs(args.profile_dir, exist_ok=True)
    result: dict[str, Any] = {
        "schema": 1,
        "command": shlex.join(["python", "-m", "benchmarks.repair_bench", *argv]),
        "machine": nb.machine(base),
        "plan": asdict(plan),
        "client_loop": nb.client_loop(),
    }
    env = {} if plan.antientropy_interval_s is None else {
        "CAIRN_ANTIENTROPY_INTERVAL_S": str(plan.antientropy_interval_s)}
    result["node_env"] = env
    started = time.perf_counter()
    try:
        with LocalCluster(
                os.path.join(base, "cluster"), nodes=3, partitions=plan.partitions,
                node_args=["--sync", "always"], env=env, log_level="warning") as cluster:
            result["partitions"] = cluster.map.partitions
            pids = cluster.pids()
            dirs = {n: cluster.data_dirs(n) for n in cluster.node_ids}
            nb.log(f"3 nodes {cluster.seeds} (pids {list(pids.values())}), data under {base}")
            bench = Bench(plan, cluster.seeds, pids, dirs, base, args.profile_dir,
                          cluster.map.partitions)
            result["runs"] = nb.run_async(bench.run())
            result["data_set"] = {"objects": len(bench.data.objects),
                                  "bytes": bench.data.total_bytes,
                                  "by_size": {str(s): len(v)
                                              for s, v in bench.data.by_size().items()}}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    result["summary"] = report.summarise(plan, result["runs"])
    nb.write_outputs(result, report.render(result), out=args.out, results=args.results,
                     quick=args.quick, no_results=args.no_results, section=SECTION,
                     marker=MARKER)
    return result


if __name__ == "__main__":
    main()
