"""cairn against OpenStack Swift, in one run, with one load generator (``benchmarks.load``).

    python -m benchmarks.compare            # ~8 min; updates RESULTS.md and benchmarks/plots/
    python -m benchmarks.compare --quick    # ~2 min; prints only

Starts a local cairn cluster (``LocalCluster(nodes=3)``: N = 3, W = 2, R = 2, sync
"always", as shipped) and, unless it already answers, the Swift peer
(``../shared/peers/swift/setup.sh``, as root; stopped again at the end with ``stop.sh``
if this run started it). Then, for each repeat, each system in turn (the order alternates
from repeat to repeat) runs the same cells with the same settings:

- 4 KiB PUT, then 4 KiB GET (random over the 4 KiB objects written so far), at each
  concurrency of ``--sweep`` (throughput against concurrency);
- 1 MiB PUT, then 1 MiB GET, at ``--concurrency``.

Both systems are driven by asyncio clients in this process on uvloop (cairn:
``cairn.AsyncClient`` seeded with every node; Swift: aiohttp over keep-alive connections,
tempauth). Server CPU per operation is summed over the three node processes, and over
every Swift process (proxy and its workers, object/container/account servers, memcached).

Reported: medians over repeats, and ratios cairn / Swift both as a ratio of medians and
as the median of the per-repeat ratios (the two systems ran back to back in a repeat, so
the load other programs put on a shared machine hits both alike), against the targets of
issue 7. Plots: ``compare_throughput.png`` and ``compare_latency_cdf.png``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from . import _compare_report as report
from . import _netbench as nb
from . import _targets
from .load import KeyPool, PhaseResult, append_json, run_phase

SWIFT_DIR: Final = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "shared", "peers", "swift")
PLOTS_DIR: Final = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plots")
SMALL: Final = 4 << 10
LARGE: Final = 1 << 20
SYSTEMS: Final = ("cairn", "swift")


@dataclass(frozen=True, slots=True)
class Plan:
    repeats: int
    duration_s: float
    concurrency: int
    sweep: tuple[int, ...]
    warmup: int


def make_plan(args: argparse.Namespace) -> Plan:
    quick = args.quick
    sweep = nb.ints(args.sweep) if args.sweep else ((args.concurrency,) if quick else
                                                   (1, 4, args.concurrency, 64))
    if args.concurrency not in sweep:
        sweep = tuple(sorted({*sweep, args.concurrency}))
    return Plan(repeats=args.repeats or 3, duration_s=args.duration or (1.5 if quick else 5.0),
                concurrency=args.concurrency, sweep=sweep, warmup=args.concurrency)


def cells(plan: Plan) -> list[tuple[str, int, int]]:
    """(op, size, concurrency) in the order one system runs them in a repeat."""
    out = [("put", SMALL, c) for c in plan.sweep] + [("get", SMALL, c) for c in plan.sweep]
    return [*out, ("put", LARGE, plan.concurrency), ("get", LARGE, plan.concurrency)]


# --------------------------------------------------------------------------- Swift


def swift_answers(url: str) -> bool:
    try:
        _targets.swift_auth(url, _targets.SWIFT_USER, _targets.SWIFT_KEY)
    except OSError:
        return False
    except _targets.HTTPStatusError:
        return False
    return bool(_targets.swift_leaders())


def swift_version() -> str:
    try:
        out = subprocess.run(["/usr/bin/python3", "-c", "import swift; print(swift.__version__)"],
                             capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "?"
    return out.stdout.strip() or "?"


def start_swift(swift_dir: str, log_path: str) -> None:
    """Raises: SystemExit: setup.sh failed (its output is in ``log_path``)."""
    nb.log(f"starting the Swift peer: bash {swift_dir}/setup.sh (log {log_path})")
    with open(log_path, "wb") as log:
        rc = subprocess.run(["bash", os.path.join(swift_dir, "setup.sh")], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            check=False).returncode
    if rc != 0:
        raise SystemExit(f"Swift setup failed ({rc}); see {log_path}")


def stop_swift(swift_dir: str, log_path: str) -> None:
    nb.log("stopping the Swift peer (stop.sh)")
    with open(log_path, "ab") as log:
        subprocess.run(["bash", os.path.join(swift_dir, "stop.sh")], stdout=log,
                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)


# --------------------------------------------------------------------------- the run


async def run_all(plan: Plan, seeds: Sequence[str], cairn_pids: Sequence[int], url: str,
                  json_path: str | None) -> list[PhaseResult]:
    run_id = f"cmp-{int(time.time())}"
    targets: dict[str, _targets.Target] = {
        "cairn": _targets.CairnTarget(seeds, "compare", pids=cairn_pids,
                                      concurrency=max(plan.sweep)),
        "swift": _targets.SwiftTarget(url, "compare", concurrency=max(plan.sweep)),
    }
    pools = {name: KeyPool(run_id) for name in SYSTEMS}
    results: list[PhaseResult] = []
    for t in targets.values():
        await t.open()
    try:
        for rep in range(plan.repeats):
            order = SYSTEMS if rep % 2 == 0 else SYSTEMS[::-1]
            for system in order:
                for op, size, conc in cells(plan):
                    r = await run_phase(targets[system], pools[system], f"compare-{op}", op,
                                        size, conc, duration_s=plan.duration_s,
                                        warmup=plan.warmup, seed=rep,
                                        extra={"repeat": rep})
                    results.append(r)
                    d = r.as_dict()
                    nb.log(f"rep {rep} {system:<5} {op:<3} {d['size']:>3} c={conc:<3} "
                           f"{d['ops_s']:>8.1f} ops/s {d['mb_s']:>7.1f} MB/s "
                           f"{d['server_cpu_ms_per_op']:>7.2f} ms CPU/op p50 "
                           f"{d['latency_ms']['p50']:.1f} ms errors {d['errors'] or '-'}")
                    if json_path:
                        append_json(json_path, d)
    finally:
        for t in targets.values():
            await t.close()
    return results


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="short cells, no concurrency sweep; prints only")
    p.add_argument("--repeats", type=int, default=0, help="repeats (default 3; at least 3 "
                   "for a result worth recording)")
    p.add_argument("--duration", type=float, default=0.0, help="seconds per cell (5; quick 1.5)")
    p.add_argument("--concurrency", type=int, default=16, help="the main cells' concurrency")
    p.add_argument("--sweep", default="", help="4 KiB concurrencies (default 1,4,16,64)")
    p.add_argument("--dir", help="where the cairn cluster's data goes (default $TMPDIR)")
    p.add_argument("--swift-url", default=_targets.SWIFT_URL)
    p.add_argument("--swift-dir", default=SWIFT_DIR, help="where setup.sh and stop.sh are")
    p.add_argument("--keep-swift", action="store_true",
                   help="leave a Swift peer this run started running")
    p.add_argument("--json", help="append every phase as a JSON line to this file")
    p.add_argument("--results", help="markdown file to update (default: RESULTS.md unless "
                   "--quick)")
    p.add_argument("--no-results", action="store_true")
    p.add_argument("--plots", help="directory for the PNG plots (default benchmarks/plots "
                   "unless --quick)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    plan = make_plan(args)
    base = nb.base_dir(args.dir, "cairn-compare-")
    started = time.perf_counter()
    swift_log = os.path.join(base, "swift-setup.log")
    started_swift = False
    result: dict[str, Any] = {
        "schema": 1, "command": shlex.join(["python", "-m", "benchmarks.compare", *argv]),
        "machine": nb.machine(base), "plan": asdict(plan), "client_loop": nb.client_loop(),
    }
    try:
        if not swift_answers(args.swift_url):
            start_swift(args.swift_dir, swift_log)
            started_swift = True
        result["machine"]["swift"] = swift_version()
        result["machine"]["aiohttp"] = nb._version("aiohttp")
        with nb.local_cluster(os.path.join(base, "cairn"), 3, None) as cluster:
            pids = tuple(cluster.pids().values())
            nb.log(f"cairn: 3 nodes {cluster.seeds} (pids {list(pids)}); Swift: "
                   f"{args.swift_url} (leaders {_targets.swift_leaders()}); data under {base}")
            results = nb.run_async(run_all(plan, cluster.seeds, pids, args.swift_url,
                                           args.json))
    finally:
        if started_swift and not args.keep_swift:
            stop_swift(args.swift_dir, swift_log)
        shutil.rmtree(base, ignore_errors=True)
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    result["loadavg_at_end"] = nb.loadavg()
    summary = report.summarise(plan.concurrency, plan.sweep, results)
    result["summary"] = summary
    text = report.render(result)
    plots = args.plots or (None if args.quick else PLOTS_DIR)
    if plots:
        files = report.plot(results, plan.concurrency, plots)
        nb.log("plots: " + ", ".join(files))
    nb.write_outputs(result, text, out=None, results=args.results, quick=args.quick,
                     no_results=args.no_results, section=report.SECTION,
                     marker=report.MARKER)
    return result


if __name__ == "__main__":
    main()
