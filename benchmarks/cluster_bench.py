"""A three-node cluster through the SDK, beside one node and a gRPC fan-out floor, all
measured in the same run.

    python -m benchmarks.cluster_bench [--quick] [--dir DIR] [--out JSON]

One run starts, in a fresh directory on the disk being measured:

- a local three-node cluster (``cairn.cluster.launcher.LocalCluster(nodes=3)``: N = 3,
  W = 2, R = 2, sync "always"),
- a one-node cluster (N = W = R = 1), the figures a cluster is compared with,
- the fan-out floor: ``python -m benchmarks._rpc_floor --role front`` forwarding to two
  ``--role peer`` processes (grpc.aio on uvloop like the nodes, raw bytes, no disk). A
  PUT carries the value to the front, which sends it to both peers and answers after
  both acked (``--put-acks 2``); peers only ack. Two variants: over one long-lived bidi
  stream per peer, writes matched to acks by seq (what ``node/server/peers.py`` does for
  small writes), and one unary call per peer per write. A GET asks both peers with an
  8-byte message and answers the value once one acked (R = 2 counting the front);
  a large upload is forwarded chunk by chunk on one client stream per peer,

and measures from this process (``cairn.AsyncClient`` on uvloop, seeded with every node;
the floor through one ``grpc.aio`` channel to the front):

- PUT and GET ops/s of 4 KiB and 64 KiB objects at concurrency 16 and 64,
- upload and download MB/s of 64 MiB objects, one stream at a time,
- the server CPU per operation summed over the node (or floor) processes, from /proc.

Target: three-node small PUT >= 0.5 of the fan-out floor (stream variant). A full run
rewrites the generated block of the "Three-node cluster" section of benchmarks/RESULTS.md.
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
from ._procs import FloorProcess, stop_all
from ._report import md_table

SECTION: Final = "Three-node cluster"
MARKER: Final = "cluster_bench"
TARGET_PUT: Final = 0.5
SETTLE_BEFORE_GETS_S: Final = 1.0
"""After prefilling, let the third replica of every object land before GETs are timed
(a GET that meets a stale replica would start a read repair)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What one run measures and for how long."""

    sizes: tuple[int, ...] = (4 * KiB, 64 * KiB)
    concurrency: tuple[int, ...] = (16, 64)
    large_bytes: int = 64 * MiB  # 0 skips the large-object cells
    duration_s: float = 1.5
    large_duration_s: float = 2.0
    repeats: int = 3
    large_repeats: int = 3
    get_keys: int = 256
    put_acks: int = 2  # peer acks the fan-out floor's PUT waits for
    get_acks: int = 1  # peer acks its GET waits for


QUICK: Final = Plan(duration_s=0.5, large_duration_s=1.0, repeats=1, large_repeats=1)

SYSTEMS: Final = ("cluster", "one-node", "fanout-stream", "fanout-unary")


class Bench:
    def __init__(self, plan: Plan, cluster: cells.Target, one: cells.Target,
                 front: FloorProcess, floor_pids: tuple[int, ...], base: str) -> None:
        self.plan = plan
        self.cluster = cluster
        self.one = one
        self.front = front
        self.floor_pids = floor_pids
        self.base = base
        self.runs: Runs = {}

    def _add(self, key: tuple[str, str, int, int], sample: NetSample) -> None:
        self.runs.setdefault(key, []).append(sample)
        system, op, size, conc = key
        nb.log(f"  {system:13} {op:8} {nb.size_name(size):>7} x{conc:<3} {sample.ops_s:9,.0f} "
               f"ops/s {sample.mb_s:8,.1f} MB/s  server {sample.server_cpu_ms_per_op:7.3f} "
               f"ms/op  client {sample.client_cpu_ms_per_op:6.3f} ms/op")

    async def run(self) -> Runs:
        plan = self.plan
        for target in (self.cluster, self.one):
            await cells.ensure_bucket(target.seeds)
        for size in plan.sizes:
            for target in (self.cluster, self.one):
                await cells.prefill(target.seeds, size, plan.get_keys)
        await asyncio.sleep(SETTLE_BEFORE_GETS_S)
        source = None
        if plan.large_bytes:
            source = cells.make_source_file(self.base, plan.large_bytes)
            for target in (self.cluster, self.one):
                await cells.prefill_large(target.seeds, source, plan.large_bytes)
        started = time.perf_counter()
        for rep in range(plan.repeats):
            nb.log(f"repeat {rep + 1} of {plan.repeats} ({time.perf_counter() - started:.0f} s)")
            # Rotate which system goes first, so that none always follows the same one.
            order = SYSTEMS[rep % len(SYSTEMS):] + SYSTEMS[:rep % len(SYSTEMS)]
            for op in ("put", "get"):
                for size in plan.sizes:
                    for conc in plan.concurrency:
                        for system in order:
                            await self._small(system, op, size, conc, rep)
            if source is not None and rep < plan.large_repeats:
                for op in ("upload", "download"):
                    for system in order:
                        await self._large(system, op, rep, source)
        return self.runs

    async def _small(self, system: str, op: str, size: int, conc: int, rep: int) -> None:
        d = self.plan.duration_s
        if system in ("cluster", "one-node"):
            target = self.cluster if system == "cluster" else self.one
            sample = await cells.sdk_small(target, op, size, conc, d,
                                           tag=f"put-{size}-{rep}-{conc}",
                                           get_keys=self.plan.get_keys)
        else:
            sample = await cells.floor_small(self.front.address, self.floor_pids, op, size,
                                             conc, d, unary=system == "fanout-unary")
        self._add((system, op, size, conc), sample)

    async def _large(self, system: str, op: str, rep: int, source: str) -> None:
        size, d = self.plan.large_bytes, self.plan.large_duration_s
        if system == "fanout-unary":
            return  # large objects travel on one stream per object and peer either way
        if system in ("cluster", "one-node"):
            target = self.cluster if system == "cluster" else self.one
            sample = await cells.sdk_large(target, op, size, d, tag=f"large-{op}-{rep}",
                                           source_path=source, scratch_dir=self.base)
        else:
            sample = await cells.floor_large(self.front.address, self.floor_pids, op, size, d)
        self._add((system, op, size, 1), sample)


# --------------------------------------------------------------------------- summary


def summarise(plan: Plan, runs: Runs) -> dict[str, Any]:
    small, large, targets = [], [], []
    for op in ("put", "get"):
        for size in plan.sizes:
            for conc in plan.concurrency:
                got = {s: runs.get((s, op, size, conc)) for s in SYSTEMS}
                if not all(got.values()):
                    continue
                c = {s: nb.cell(v) for s, v in got.items() if v}
                r = {s: v for s, v in got.items() if v}
                small.append({
                    "op": op, "size_bytes": size, "concurrency": conc, **c,
                    "ratio_stream": nb.paired_ratio(r["cluster"], r["fanout-stream"]),
                    "ratio_unary": nb.paired_ratio(r["cluster"], r["fanout-unary"]),
                    "ratio_one_node": nb.paired_ratio(r["cluster"], r["one-node"]),
                })
                if op == "put":
                    targets.append(nb.target_row(
                        f"3-node PUT {nb.size_name(size)} x{conc} vs fan-out floor (stream)",
                        c["cluster"]["ops_s"], c["fanout-stream"]["ops_s"], "ops/s", TARGET_PUT,
                        small[-1]["ratio_stream"]))
    size = plan.large_bytes
    for op in ("upload", "download") if size else ():
        got = {s: runs.get((s, op, size, 1)) for s in ("cluster", "one-node", "fanout-stream")}
        if not all(got.values()):
            continue
        c = {s: nb.cell(v) for s, v in got.items() if v}
        r = {s: v for s, v in got.items() if v}
        large.append({"op": op, "size_bytes": size, **c,
                      "ratio_floor": nb.paired_ratio(r["cluster"], r["fanout-stream"], by="mb_s"),
                      "ratio_one_node": nb.paired_ratio(r["cluster"], r["one-node"], by="mb_s")})
    return {"small": small, "large": large, "targets": targets}


def render(result: dict[str, Any]) -> str:
    s, plan = result["summary"], result["plan"]
    setup = (
        "Setup: `LocalCluster(nodes=3)` (N = 3, W = 2, R = 2, sync \"always\", every node a "
        "replica of every partition) and `LocalCluster(nodes=1)` (N = W = R = 1) running "
        "side by side, each node a `python -m cairn.node` process with its data on the disk "
        "above; the client is this process (`cairn.AsyncClient` on "
        f"{result['client_loop']}, seeded with every node of the cluster, N coroutines "
        "sharing one client). The fan-out floor is three processes (`python -m "
        "benchmarks._rpc_floor`: one `--role front`, two `--role peer`; grpc.aio on uvloop, "
        "raw bytes, no disk): a PUT carries the value to the front, which forwards it to both "
        f"peers and answers after {plan['put_acks']} peer acks; *stream*: one long-lived bidi "
        "stream per peer with writes matched to acks by seq (as `node/server/peers.py` does), "
        "*unary*: one unary call per peer per write. A GET sends the front an 8-byte request; "
        f"it asks both peers (8 bytes) and answers the value after {plan['get_acks']} ack(s) "
        "(R = 2 counting itself). Large uploads are forwarded chunk by chunk on one client "
        "stream per peer; large downloads ask both peers, then stream from the front. *Server "
        "CPU* is summed over the three node (or floor) processes, or the one node.")
    lines = nb.header(result, setup)
    if s["small"]:
        lines += ["### Small objects", ""]
        rows = []
        for r in s["small"]:
            goal = TARGET_PUT if r["op"] == "put" else None
            rows.append([
                r["op"].upper(), nb.size_name(r["size_bytes"]), r["concurrency"],
                nb.n(r["cluster"]["ops_s"]), nb.spread(r["cluster"]["runs_ops_s"]),
                nb.n(r["one-node"]["ops_s"]), nb.n(r["fanout-stream"]["ops_s"]),
                nb.spread(r["fanout-stream"]["runs_ops_s"]), nb.n(r["fanout-unary"]["ops_s"]),
                nb.goal_cell(r["ratio_stream"], goal), f"{r['ratio_unary']:.2f}",
                f"{r['ratio_one_node']:.2f}",
                nb.ms(r["cluster"]["server_cpu_ms_per_op"]),
                nb.ms(r["one-node"]["server_cpu_ms_per_op"]),
                nb.ms(r["fanout-stream"]["server_cpu_ms_per_op"]),
                nb.ms(r["fanout-unary"]["server_cpu_ms_per_op"]),
                nb.ms(r["cluster"]["client_cpu_ms_per_op"])])
        lines += md_table(
            ["op", "value", "conc.", "3 nodes ops/s", "range", "1 node ops/s",
             "fan-out stream ops/s", "range", "fan-out unary ops/s", "3n / stream",
             "3n / unary", "3n / 1n", "server CPU ms/op: 3 nodes", "1 node",
             "fan-out stream", "fan-out unary", "client CPU ms/op (3 nodes)"], rows)
        lines.append("")
    if s["large"]:
        lines += [f"### Large objects: {nb.size_name(s['large'][0]['size_bytes'])}, one stream "
                  "at a time", "",
                  "*upload*: `AsyncClient.upload` from a file; *download*: "
                  "`AsyncClient.download` to a file (verified, fsynced, renamed). CPU per MiB "
                  "moved, summed over the server processes.", ""]
        rows = [[r["op"], nb.n(r["cluster"]["mb_s"]), nb.spread(r["cluster"]["runs_mb_s"]),
                 nb.n(r["one-node"]["mb_s"]), nb.n(r["fanout-stream"]["mb_s"]),
                 nb.spread(r["fanout-stream"]["runs_mb_s"]), f"{r['ratio_floor']:.2f}",
                 f"{r['ratio_one_node']:.2f}",
                 nb.ms(r["cluster"]["server_cpu_ms_per_op"] * MiB / r["size_bytes"]),
                 nb.ms(r["one-node"]["server_cpu_ms_per_op"] * MiB / r["size_bytes"]),
                 nb.ms(r["fanout-stream"]["server_cpu_ms_per_op"] * MiB / r["size_bytes"])]
                for r in s["large"]]
        lines += md_table(["op", "3 nodes MB/s", "range", "1 node MB/s", "fan-out floor MB/s",
                           "range", "3n / floor", "3n / 1n", "server CPU ms/MiB: 3 nodes",
                           "1 node", "floor"], rows)
        lines.append("")
    if s["targets"]:
        rows = [[t["target"], f"{nb.n(t['figure'])} {t['unit']}",
                 f"{nb.n(t['floor'])} {t['unit']}", f"{t['ratio']:.2f}",
                 f">= {t['goal']:.1f}", "yes" if t["met"] else "**no**"] for t in s["targets"]]
        lines += ["### Targets", ""]
        lines += md_table(["target", "3 nodes", "floor", "ratio", "goal", "met"], rows)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- entry point


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cluster_bench",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one short repeat (about a minute)")
    p.add_argument("--dir", help="base directory on the disk to measure (default: a temp "
                                 "dir under $TMPDIR or /tmp, refused if that is tmpfs)")
    p.add_argument("--out", help="write the full results as JSON here")
    p.add_argument("--results", help="markdown file to update (default: benchmarks/RESULTS.md "
                                     "for a full run, nothing for --quick)")
    p.add_argument("--no-results", action="store_true", help="do not touch any RESULTS.md")
    p.add_argument("--sizes", type=nb.ints, help="small object sizes in bytes, comma separated")
    p.add_argument("--concurrency", type=nb.ints, help="in-flight requests, comma separated")
    p.add_argument("--large-bytes", type=int, help="large object size (0 skips them)")
    p.add_argument("--duration", type=float, help="seconds per small cell and repeat")
    p.add_argument("--large-duration", type=float, help="seconds per large cell and repeat")
    p.add_argument("--repeats", type=int, help="runs per small cell (median reported)")
    p.add_argument("--large-repeats", type=int, help="runs per large cell")
    p.add_argument("--get-keys", type=int, help="objects per size written for GET cells")
    p.add_argument("--node-command", type=shlex.split,
                   help="argv prefix that runs a node (default: python -m cairn.node), e.g. "
                        "to run the nodes under instrumentation")
    p.add_argument("--put-acks", type=int, help="peer acks a floor PUT waits for (default 2)")
    return p.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else Plan()
    changes: dict[str, Any] = {}
    for arg, field in (("sizes", "sizes"), ("concurrency", "concurrency"),
                       ("large_bytes", "large_bytes"), ("duration", "duration_s"),
                       ("large_duration", "large_duration_s"), ("repeats", "repeats"),
                       ("large_repeats", "large_repeats"),
                       ("get_keys", "get_keys"), ("put_acks", "put_acks")):
        if getattr(args, arg) is not None:
            changes[field] = getattr(args, arg)
    return replace(plan, **changes)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the result that ``--out`` writes."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    plan = make_plan(args)
    base = nb.base_dir(args.dir, "cairn-cluster-bench-")
    result: dict[str, Any] = {
        "schema": 1,
        "command": shlex.join(["python", "-m", "benchmarks.cluster_bench", *argv]),
        "machine": nb.machine(base),
        "plan": asdict(plan),
        "client_loop": nb.client_loop(),
    }
    started = time.perf_counter()
    floors: list[FloorProcess] = []
    try:
        with nb.local_cluster(os.path.join(base, "three"), 3, args.node_command) as three, \
                nb.local_cluster(os.path.join(base, "one"), 1, args.node_command) as one:
            for i in (1, 2):
                floors.append(FloorProcess(["--role", "peer"],
                                           os.path.join(base, f"peer-{i}.log")).start())
            front = FloorProcess(
                ["--role", "front", "--peers", ",".join(p.address for p in floors),
                 "--put-acks", str(plan.put_acks), "--get-acks", str(plan.get_acks)],
                os.path.join(base, "front.log")).start()
            floors.append(front)
            cluster = cells.Target(tuple(three.seeds), tuple(three.pids().values()))
            single = cells.Target(tuple(one.seeds), tuple(one.pids().values()))
            nb.log(f"3 nodes {list(cluster.seeds)} (pids {list(cluster.pids)}), 1 node "
                   f"{single.seeds[0]}, fan-out floor front {front.address} "
                   f"(pids {[p.pid for p in floors]}), data under {base}")
            bench = Bench(plan, cluster, single, front, tuple(p.pid for p in floors), base)
            runs = nb.run_async(bench.run())
    finally:
        stop_all(floors)
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
