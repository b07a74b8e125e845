"""One node through the SDK, beside a grpc.aio echo floor measured in the same run.

    python -m benchmarks.sdk_bench [--quick] [--dir DIR] [--out JSON]

One run starts, in a fresh directory on the disk being measured:

- one node, ``python -m cairn.node --sync always`` (through ``cairn.cluster.launcher``:
  a one-node cluster map, N = W = R = 1), and
- one floor server, ``python -m benchmarks._rpc_floor --role echo``: grpc.aio on uvloop
  like the node, raw bytes in and out, no protobuf, no disk.

and measures, from this process (``cairn.AsyncClient`` on uvloop; the floor through a
``grpc.aio`` channel the same way):

- PUT and GET ops/s of 4 KiB and 64 KiB objects at concurrency 1, 16 and 64 (coroutines
  sharing one client), beside the echo floor moving the same payload the same way (a
  unary call carrying the value, answered by a 1-byte ack; a unary call answered with the
  value);
- with ``cairn.Client`` (the blocking client) shared by 16 threads, the same small PUTs
  and GETs (the floor is still the async one);
- MB/s of 64 MiB objects, one stream at a time: ``upload`` from a file and ``download`` to
  a file, and ``put`` / ``get`` of the value in memory, beside the floor's client-streamed
  upload and server-streamed download of the same size in 1 MiB chunks;
- the server CPU per operation of the node and of the echo server, from /proc.

Targets: small PUT >= 0.5 of the floor, small GET >= 0.6, large upload/download MB/s >=
0.5. Every cell runs ``--repeats`` times, interleaved with its floor; medians are
reported. A full run rewrites the generated block of the "One node through the SDK"
section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Final

from . import _netbench as nb
from . import _netcells as cells
from ._load import NetSample
from ._netbench import KiB, MiB, Runs
from ._procs import FloorProcess
from ._report import md_table

SECTION: Final = "One node through the SDK"
MARKER: Final = "sdk_bench"
TARGET_PUT: Final = 0.5
TARGET_GET: Final = 0.6
TARGET_LARGE: Final = 0.5
SMALL_GOALS: Final = {"put": TARGET_PUT, "get": TARGET_GET}


@dataclass(frozen=True, slots=True)
class Plan:
    """What one run measures and for how long."""

    sizes: tuple[int, ...] = (4 * KiB, 64 * KiB)
    concurrency: tuple[int, ...] = (1, 16, 64)
    sync_threads: tuple[int, ...] = (16,)  # cairn.Client cells; () skips them
    large_bytes: int = 64 * MiB  # 0 skips the large-object cells
    large_ops: tuple[str, ...] = ("upload", "download", "put", "get")
    duration_s: float = 1.5
    large_duration_s: float = 2.0
    repeats: int = 3
    large_repeats: int = 3
    get_keys: int = 256  # objects per size that GET cells read


QUICK: Final = Plan(duration_s=0.5, large_duration_s=1.0, repeats=1, large_repeats=1)


class Bench:
    """Runs the plan's cells against one node and one echo server."""

    def __init__(self, plan: Plan, node: cells.Target, echo: FloorProcess, base: str) -> None:
        self.plan = plan
        self.node = node
        self.echo = echo
        self.base = base
        self.runs: Runs = {}

    def _add(self, key: tuple[str, str, int, int], sample: NetSample) -> None:
        self.runs.setdefault(key, []).append(sample)
        system, op, size, conc = key
        nb.log(f"  {system:9} {op:8} {nb.size_name(size):>7} x{conc:<3} {sample.ops_s:9,.0f} "
               f"ops/s {sample.mb_s:8,.1f} MB/s  server {sample.server_cpu_ms_per_op:7.3f} "
               f"ms/op  client {sample.client_cpu_ms_per_op:6.3f} ms/op")

    async def run(self) -> Runs:
        plan = self.plan
        await cells.ensure_bucket(self.node.seeds)
        for size in plan.sizes:
            await cells.prefill(self.node.seeds, size, plan.get_keys)
        source = None
        if plan.large_bytes:
            source = cells.make_source_file(self.base, plan.large_bytes)
            await cells.prefill_large(self.node.seeds, source, plan.large_bytes)
        started = time.perf_counter()
        for rep in range(plan.repeats):
            nb.log(f"repeat {rep + 1} of {plan.repeats} ({time.perf_counter() - started:.0f} s)")
            flip = rep % 2 == 1
            for op in ("put", "get"):
                for size in plan.sizes:
                    for conc in plan.concurrency:
                        await self._small_pair(op, size, conc, rep, flip)
                    for threads in plan.sync_threads:
                        sample = await asyncio.to_thread(
                            cells.sdk_sync_small, self.node, op, size, threads,
                            plan.duration_s, tag=f"sync-{size}-{rep}-{threads}",
                            get_keys=plan.get_keys)
                        self._add(("sdk-sync", op, size, threads), sample)
            if source is not None and rep < plan.large_repeats:
                for op in plan.large_ops:
                    await self._large_pair(op, rep, flip, source)
        return self.runs

    async def _small_pair(self, op: str, size: int, conc: int, rep: int, flip: bool) -> None:
        async def sdk() -> None:
            self._add(("sdk", op, size, conc), await cells.sdk_small(
                self.node, op, size, conc, self.plan.duration_s,
                tag=f"put-{size}-{rep}-{conc}", get_keys=self.plan.get_keys))

        async def floor() -> None:
            self._add(("echo", op, size, conc), await cells.floor_small(
                self.echo.address, [self.echo.pid], op, size, conc, self.plan.duration_s))

        for step in ((floor, sdk) if flip else (sdk, floor)):
            await step()

    async def _large_pair(self, op: str, rep: int, flip: bool, source: str) -> None:
        size = self.plan.large_bytes
        floor_op = cells.FLOOR_OP[op]

        async def sdk() -> None:
            self._add(("sdk", op, size, 1), await cells.sdk_large(
                self.node, op, size, self.plan.large_duration_s, tag=f"large-{op}-{rep}",
                source_path=source, scratch_dir=self.base))

        async def floor() -> None:
            if op != floor_op:
                return  # put/get are compared with the upload/download floor
            self._add(("echo", floor_op, size, 1), await cells.floor_large(
                self.echo.address, [self.echo.pid], floor_op, size,
                self.plan.large_duration_s))

        for step in ((floor, sdk) if flip else (sdk, floor)):
            await step()


# --------------------------------------------------------------------------- summary


def summarise(plan: Plan, runs: Runs) -> dict[str, Any]:
    small, sync, large, targets = [], [], [], []
    for op in ("put", "get"):
        for size in plan.sizes:
            for conc in plan.concurrency:
                sdk, floor = runs.get(("sdk", op, size, conc)), runs.get(("echo", op, size, conc))
                if not sdk or not floor:
                    continue
                s, f = nb.cell(sdk), nb.cell(floor)
                paired = nb.paired_ratio(sdk, floor)
                row = {"op": op, "size_bytes": size, "concurrency": conc, "sdk": s, "floor": f,
                       "ratio": paired, "goal": SMALL_GOALS[op]}
                small.append(row)
                targets.append(nb.target_row(
                    f"{op.upper()} {nb.size_name(size)} x{conc} vs echo floor", s["ops_s"],
                    f["ops_s"], "ops/s", SMALL_GOALS[op], paired))
            for threads in plan.sync_threads:
                runs_sync = runs.get(("sdk-sync", op, size, threads))
                floor = runs.get(("echo", op, size, threads))
                if not runs_sync:
                    continue
                s = nb.cell(runs_sync)
                f = nb.cell(floor) if floor else None
                sync.append({"op": op, "size_bytes": size, "threads": threads, "sdk_sync": s,
                             "floor": f,
                             "ratio": nb.paired_ratio(runs_sync, floor) if floor else None})
    size = plan.large_bytes
    for op in plan.large_ops if size else ():
        sdk, floor = runs.get(("sdk", op, size, 1)), runs.get(("echo", cells.FLOOR_OP[op], size, 1))
        if not sdk or not floor:
            continue
        s, f = nb.cell(sdk), nb.cell(floor)
        paired = nb.paired_ratio(sdk, floor, by="mb_s")
        large.append({"op": op, "size_bytes": size, "floor_op": cells.FLOOR_OP[op], "sdk": s,
                      "floor": f, "ratio": paired, "goal": TARGET_LARGE})
        if op in ("upload", "download"):
            targets.append(nb.target_row(f"{op} {nb.size_name(size)} vs streaming floor",
                                         s["mb_s"], f["mb_s"], "MB/s", TARGET_LARGE, paired))
    return {"small": small, "sync_client": sync, "large": large, "targets": targets}


def render(result: dict[str, Any]) -> str:
    s = result["summary"]
    setup = (
        "Setup: one node (`python -m cairn.node --sync always`, started by "
        "`cairn.cluster.launcher.LocalCluster(nodes=1)`: a one-node map, N = W = R = 1) with "
        "its data on the disk above; the echo floor (`python -m benchmarks._rpc_floor --role "
        "echo`: grpc.aio on uvloop like the node, raw bytes, no protobuf, no disk) in a "
        "process of its own; the client is this process: `cairn.AsyncClient` on "
        f"{result['client_loop']} with N coroutines sharing one client (one channel), the floor "
        "through one `grpc.aio` channel the same way. All three share the machine's CPUs. "
        "PUTs write new keys; GETs read random keys among "
        f"{result['plan']['get_keys']} written before. *Floor* for PUT: a unary call carrying "
        "the value, answered with 1 byte; for GET: a unary call answered with the value.")
    lines = nb.header(result, setup)
    if s["small"]:
        lines += ["### Small objects: PUT and GET vs the echo floor", ""]
        rows = [[r["op"].upper(), nb.size_name(r["size_bytes"]), r["concurrency"],
                 nb.n(r["sdk"]["ops_s"]), nb.spread(r["sdk"]["runs_ops_s"]),
                 nb.n(r["floor"]["ops_s"]), nb.spread(r["floor"]["runs_ops_s"]),
                 nb.goal_cell(r["ratio"], r["goal"]), f">= {r['goal']:.1f}",
                 nb.ms(r["sdk"]["server_cpu_ms_per_op"]),
                 nb.ms(r["floor"]["server_cpu_ms_per_op"]),
                 nb.ms(r["sdk"]["client_cpu_ms_per_op"]),
                 nb.ms(r["floor"]["client_cpu_ms_per_op"])] for r in s["small"]]
        lines += md_table(["op", "value", "concurrency", "SDK ops/s", "range",
                              "echo ops/s", "range", "ratio", "goal", "node CPU ms/op",
                              "echo CPU ms/op", "client CPU ms/op (SDK)",
                              "client CPU ms/op (echo)"], rows)
        lines.append("")
    if s["sync_client"]:
        lines += ["### The blocking client: `cairn.Client` shared by N threads", "",
                  "Same node, same cells; the floor is the async echo floor above.", ""]
        rows = [[r["op"].upper(), nb.size_name(r["size_bytes"]), r["threads"],
                 nb.n(r["sdk_sync"]["ops_s"]), nb.spread(r["sdk_sync"]["runs_ops_s"]),
                 nb.n(r["floor"]["ops_s"]) if r["floor"] else "-",
                 f"{r['ratio']:.2f}" if r["ratio"] is not None else "-",
                 nb.ms(r["sdk_sync"]["server_cpu_ms_per_op"]),
                 nb.ms(r["sdk_sync"]["client_cpu_ms_per_op"])] for r in s["sync_client"]]
        lines += md_table(["op", "value", "threads", "Client ops/s", "range",
                              "echo ops/s (async)", "ratio", "node CPU ms/op",
                              "client CPU ms/op"], rows)
        lines.append("")
    if s["large"]:
        lines += [f"### Large objects: {nb.size_name(s['large'][0]['size_bytes'])}, one stream "
                  "at a time", "",
                  "*upload*: `AsyncClient.upload` from a file (page-cached); *download*: "
                  "`AsyncClient.download` to a file (verified, fsynced, renamed); *put* / "
                  "*get*: `put` / `get_bytes` of the value in memory. The floor streams the "
                  "same size in 1 MiB messages (client stream up, server stream down). "
                  "CPU per MiB moved.", ""]
        rows = [[r["op"], nb.n(r["sdk"]["mb_s"]), nb.spread(r["sdk"]["runs_mb_s"]),
                 r["floor_op"], nb.n(r["floor"]["mb_s"]), nb.spread(r["floor"]["runs_mb_s"]),
                 nb.goal_cell(r["ratio"], r["goal"] if r["op"] in ("upload", "download")
                              else None),
                 nb.ms(r["sdk"]["server_cpu_ms_per_op"] * MiB / r["size_bytes"]),
                 nb.ms(r["floor"]["server_cpu_ms_per_op"] * MiB / r["size_bytes"]),
                 nb.ms(r["sdk"]["client_cpu_ms_per_op"] * MiB / r["size_bytes"])]
                for r in s["large"]]
        lines += md_table(["op", "SDK MB/s", "range", "floor", "floor MB/s", "range",
                              "ratio", "node CPU ms/MiB", "echo CPU ms/MiB",
                              "client CPU ms/MiB (SDK)"], rows)
        lines.append("")
    if s["targets"]:
        rows = [[t["target"], f"{nb.n(t['figure'])} {t['unit']}",
                 f"{nb.n(t['floor'])} {t['unit']}", f"{t['ratio']:.2f}",
                 f">= {t['goal']:.1f}", "yes" if t["met"] else "**no**"] for t in s["targets"]]
        lines += ["### Targets", ""]
        lines += md_table(["target", "SDK", "floor", "ratio", "goal", "met"], rows)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- entry point


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sdk_bench",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one short repeat (under a minute)")
    p.add_argument("--dir", help="base directory on the disk to measure (default: a temp "
                                 "dir under $TMPDIR or /tmp, refused if that is tmpfs)")
    p.add_argument("--out", help="write the full results as JSON here")
    p.add_argument("--results", help="markdown file to update (default: benchmarks/RESULTS.md "
                                     "for a full run, nothing for --quick)")
    p.add_argument("--no-results", action="store_true", help="do not touch any RESULTS.md")
    p.add_argument("--sizes", type=nb.ints, help="small object sizes in bytes, comma separated")
    p.add_argument("--concurrency", type=nb.ints, help="in-flight requests, comma separated")
    p.add_argument("--sync-threads", type=nb.ints,
                   help="thread counts for cairn.Client cells ('' or 0 skips them)")
    p.add_argument("--large-bytes", type=int, help="large object size (0 skips them)")
    p.add_argument("--large-ops", type=lambda t: tuple(x for x in t.split(",") if x),
                   help="large-object operations: upload,download,put,get")
    p.add_argument("--duration", type=float, help="seconds per small cell and repeat")
    p.add_argument("--large-duration", type=float, help="seconds per large cell and repeat")
    p.add_argument("--repeats", type=int, help="runs per small cell (median reported)")
    p.add_argument("--large-repeats", type=int, help="runs per large cell")
    p.add_argument("--get-keys", type=int, help="objects per size written for GET cells")
    p.add_argument("--node-command", type=shlex.split,
                   help="argv prefix that runs a node (default: python -m cairn.node), e.g. "
                        "to run the nodes under instrumentation")
    return p.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else Plan()
    changes: dict[str, Any] = {}
    for arg, field in (("sizes", "sizes"), ("concurrency", "concurrency"),
                       ("sync_threads", "sync_threads"), ("large_bytes", "large_bytes"),
                       ("large_ops", "large_ops"), ("duration", "duration_s"),
                       ("large_duration", "large_duration_s"), ("repeats", "repeats"),
                       ("large_repeats", "large_repeats"),
                       ("get_keys", "get_keys")):
        if getattr(args, arg) is not None:
            changes[field] = getattr(args, arg)
    if "sync_threads" in changes:
        changes["sync_threads"] = tuple(t for t in changes["sync_threads"] if t > 0)
    return replace(plan, **changes)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the result that ``--out`` writes."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    plan = make_plan(args)
    base = nb.base_dir(args.dir, "cairn-sdk-bench-")
    result: dict[str, Any] = {
        "schema": 1,
        "command": shlex.join(["python", "-m", "benchmarks.sdk_bench", *argv]),
        "machine": nb.machine(base),
        "plan": asdict(plan),
        "client_loop": nb.client_loop(),
    }
    started = time.perf_counter()
    try:
        with nb.local_cluster(os.path.join(base, "cluster"), 1, args.node_command) as cluster, \
                FloorProcess(["--role", "echo"], os.path.join(base, "echo.log")) as echo:
            node = cells.Target(tuple(cluster.seeds), tuple(cluster.pids().values()))
            nb.log(f"node {node.seeds[0]} (pid {node.pids[0]}), echo floor {echo.address} "
                   f"(pid {echo.pid}), data under {base}")
            runs = nb.run_async(Bench(plan, node, echo, base).run())
    finally:
        shutil.rmtree(base, ignore_errors=True)
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    result["loadavg_at_end"] = nb.loadavg()
    result["cells"] = nb.cells_json(runs)
    result["summary"] = summarise(plan, runs)
    nb.write_outputs(result, render(result), out=args.out, results=args.results,
                     quick=args.quick, no_results=args.no_results, section=SECTION,
                     marker=MARKER)
    return result


if __name__ == "__main__":
    main()
