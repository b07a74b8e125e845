"""One network cell alone, for as long as asked, optionally under py-spy: where the time
of sdk_bench's and cluster_bench's cells goes.

    python -m benchmarks.load_cell --system node --op put --size 4096 --concurrency 16 \\
        --duration 20 --profile /tmp/prof

``--system``: ``node`` (one node), ``cluster`` (three nodes, N=3 W=2 R=2), ``echo`` (the
echo floor), ``fanout-stream`` / ``fanout-unary`` (the fan-out floor). ``--op``: put, get
(small objects) or upload, download (``--size`` bytes, one stream at a time).

With ``--profile DIR``, once the load runs, ``py-spy record -f raw`` (plus ``--spy-args``,
e.g. ``--gil`` to sample only the thread holding the GIL) is attached by
pid to every server process and to this process (the client), and each server's CPU per
thread is read from /proc/<pid>/task (the event loop thread is the one whose tid is the
pid). At the end it prints, per process, the CPU split by thread and the functions with
the most samples (self and total; ``python -m benchmarks._pyspy FILE``
prints more). Profiles are written as ``DIR/<role>-<pid>.txt``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from . import _netbench as nb
from . import _netcells as cells
from . import _pyspy
from ._load import NetSample
from ._procs import CLOCK_TICKS, FloorProcess, stop_all

PY_SPY = os.path.join(os.path.dirname(sys.executable), "py-spy")
PROFILE_LEAD_S = 1.0  # the load runs this long before py-spy attaches


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread of ``pid`` so far, keyed ``loop`` (tid == pid) or by the
    thread's name and tid."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/comm", encoding="utf-8") as f:
                    comm = f.read().strip()
                with open(f"/proc/{pid}/task/{tid}/stat", encoding="ascii") as f:
                    text = f.read()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2:].split()
            name = "loop (main thread)" if tid == str(pid) else f"{comm}/{tid}"
            out[name] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return out


def _thread_report(before: dict[str, float], after: dict[str, float], seconds: float
                   ) -> list[str]:
    groups: dict[str, float] = {}
    for name, cpu in after.items():
        delta = cpu - before.get(name, 0.0)
        group = name if name.startswith("loop") else name.split("/")[0] + " threads"
        groups[group] = groups.get(group, 0.0) + delta
    total = sum(groups.values()) or 1e-9
    return [f"    {g:28} {cpu:6.2f} s CPU  {100 * cpu / total:5.1f} %  "
            f"({100 * cpu / seconds:5.1f} % of one core)"
            for g, cpu in sorted(groups.items(), key=lambda kv: -kv[1]) if cpu > 0]


@contextlib.contextmanager
def _system(kind: str, base: str, node_command: list[str] | None
            ) -> Iterator[tuple[cells.Target, dict[int, str]]]:
    """Start what ``kind`` names; yield its target and {pid: role}."""
    if kind in ("node", "cluster"):
        with nb.local_cluster(os.path.join(base, kind), 1 if kind == "node" else 3,
                              node_command) as cluster:
            pids = cluster.pids()
            yield (cells.Target(tuple(cluster.seeds), tuple(pids.values())),
                   {pid: f"node{nid}" for nid, pid in pids.items()})
        return
    floors: list[FloorProcess] = []
    try:
        if kind == "echo":
            floors.append(FloorProcess(["--role", "echo"], os.path.join(base, "echo.log")).start())
        else:
            for i in (1, 2):
                floors.append(FloorProcess(["--role", "peer"],
                                           os.path.join(base, f"peer{i}.log")).start())
            floors.append(FloorProcess(
                ["--role", "front", "--peers", ",".join(p.address for p in floors)],
                os.path.join(base, "front.log")).start())
        roles = {p.pid: r for p, r in zip(floors, ("echo",) if kind == "echo"
                                            else ("peer1", "peer2", "front"), strict=True)}
        yield cells.Target((floors[-1].address,), tuple(roles)), roles
    finally:
        stop_all(floors)


async def _run(args: argparse.Namespace, target: cells.Target, roles: dict[int, str],
               base: str) -> tuple[NetSample, dict[int, list[str]]]:
    floor = args.system not in ("node", "cluster")
    large = args.op in ("upload", "download")
    if not floor:
        await cells.ensure_bucket(target.seeds)
    if not floor and args.op == "get":
        await cells.prefill(target.seeds, args.size, args.get_keys)
        await asyncio.sleep(1.0)
    if large and not floor:
        source = cells.make_source_file(base, args.size)
        await cells.prefill_large(target.seeds, source, args.size)
        load = cells.sdk_large(target, args.op, args.size, args.duration, tag="cell",
                               source_path=source, scratch_dir=base)
    elif large:
        load = cells.floor_large(target.seeds[0], target.pids, args.op, args.size,
                                 args.duration)
    elif floor:
        load = cells.floor_small(target.seeds[0], target.pids, args.op, args.size,
                                 args.concurrency, args.duration,
                                 unary=args.system == "fanout-unary")
    else:
        load = cells.sdk_small(target, args.op, args.size, args.concurrency, args.duration,
                               tag="cell", get_keys=args.get_keys)
    task = asyncio.ensure_future(load)
    threads: dict[int, list[str]] = {}
    if not args.profile:
        return await task, threads
    await asyncio.sleep(PROFILE_LEAD_S)
    seconds = max(1, int(args.duration - PROFILE_LEAD_S - 0.5))
    os.makedirs(args.profile, exist_ok=True)
    spies = []
    for pid, role in [*roles.items(), (os.getpid(), "client")]:
        cmd = [PY_SPY, "record", "--pid", str(pid), "-r", str(args.rate), "-f", "raw",
               "-d", str(seconds), "-o",
               os.path.join(args.profile, f"{role}-{pid}.txt")]
        cmd += args.spy_args
        spies.append(await asyncio.create_subprocess_exec(
            *cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    before = {pid: thread_cpu(pid) for pid in roles}
    await asyncio.sleep(seconds)
    after = {pid: thread_cpu(pid) for pid in roles}
    threads = {pid: _thread_report(before[pid], after[pid], seconds) for pid in roles}
    for spy in spies:
        out, _ = await spy.communicate()
        if spy.returncode:
            nb.log(f"py-spy failed ({spy.returncode}): {out.decode(errors='replace')[-500:]}")
    return await task, threads


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.load_cell",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--system", choices=("node", "cluster", "echo", "fanout-stream",
                                        "fanout-unary"), default="node")
    p.add_argument("--op", choices=("put", "get", "upload", "download"), default="put")
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--consistency", choices=("one", "quorum", "all"), default=None,
                   help="the SDK calls' consistency (default: the SDK's, quorum)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--get-keys", type=int, default=256)
    p.add_argument("--dir", help="base directory (default: a temp dir)")
    p.add_argument("--profile", help="directory for py-spy profiles (default: no profiling)")
    p.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    p.add_argument("--spy-args", type=shlex.split, default=[],
                   help="more py-spy record arguments, e.g. '--gil' or '--idle --threads'")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--node-command", type=shlex.split)
    args = p.parse_args(argv)
    base = nb.base_dir(args.dir, "cairn-load-cell-")
    try:
        with _system(args.system, base, args.node_command) as (target, roles):
            nb.log(f"{args.system}: {list(target.seeds)}, pids {roles}")
            target = dataclasses.replace(target, consistency=args.consistency)
            sample, threads = nb.run_async(_run(args, target, roles, base))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"{args.system} {args.op} {nb.size_name(args.size)} x{args.concurrency}: "
          f"{sample.ops_s:,.0f} ops/s, {sample.mb_s:,.1f} MB/s, server CPU "
          f"{sample.server_cpu_ms_per_op:.3f} ms/op, client CPU "
          f"{sample.client_cpu_ms_per_op:.3f} ms/op")
    for pid, lines in threads.items():
        print(f"  {roles[pid]} (pid {pid}) CPU by thread while profiled:")
        print("\n".join(lines))
    if args.profile:
        for pid, role in [*roles.items(), (os.getpid(), "client")]:
            name = f"{role}-{pid}.txt"
            path = os.path.join(args.profile, name)
            if not os.path.exists(path):
                print(f"\n{name}: no profile")
                continue
            prof = _pyspy.load(path)
            if not prof.samples:
                continue
            print(f"\n{name}: {prof.samples} samples")
            for which in ("self", "total"):
                print(f"  {which}:")
                for fn, pct in prof.top(which, args.top):
                    print(f"    {pct:5.1f}%  {fn}")
    return {"sample": sample.as_dict()}


if __name__ == "__main__":
    main()
