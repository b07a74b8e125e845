"""The medians, ratios, targets, markdown and plots of ``benchmarks.compare``."""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Final

from . import _netbench as nb
from ._report import md_table
from .load import PhaseResult, percentile

SECTION: Final = "cairn against OpenStack Swift"
MARKER: Final = "compare"
SMALL: Final = 4 << 10
LARGE: Final = 1 << 20

# (name, op, size, measure, goal, how): "ops_s"/"mb_s": cairn / Swift; "cpu": Swift / cairn
# (how many times less server CPU per operation cairn spends).
TARGETS: Final = (
    ("4 KiB PUT ops/s", "put", SMALL, "ops_s", 20.0),
    ("4 KiB PUT server CPU per op (Swift / cairn)", "put", SMALL, "cpu", 20.0),
    ("4 KiB GET ops/s", "get", SMALL, "ops_s", 10.0),
    ("1 MiB PUT MB/s", "put", LARGE, "mb_s", 3.0),
    ("1 MiB GET MB/s", "get", LARGE, "mb_s", 3.0),
)


def _measure(r: PhaseResult, measure: str) -> float:
    if measure == "cpu":
        return r.server_cpu_ms_per_op
    return float(getattr(r, measure))


def _ratio(cairn: float, swift: float, measure: str) -> float:
    a, b = (swift, cairn) if measure == "cpu" else (cairn, swift)
    return a / b if b else 0.0


def _group(results: Sequence[PhaseResult]) -> dict[tuple[str, str, int, int], list[PhaseResult]]:
    groups: dict[tuple[str, str, int, int], list[PhaseResult]] = defaultdict(list)
    for r in results:
        groups[(r.target, r.phase, r.size_bytes, r.concurrency)].append(r)
    return groups


def _cell(runs: list[PhaseResult]) -> dict[str, Any]:
    dicts = [r.as_dict() for r in runs]
    med = statistics.median
    return {
        "ops_s": round(med(d["ops_s"] for d in dicts), 1),
        "mb_s": round(med(d["mb_s"] for d in dicts), 2),
        "server_cpu_ms_per_op": round(med(d["server_cpu_ms_per_op"] for d in dicts), 3),
        "client_cpu_ms_per_op": round(med(d["client_cpu_ms_per_op"] for d in dicts), 3),
        "p50_ms": round(med(d["latency_ms"]["p50"] for d in dicts), 2),
        "p99_ms": round(med(d["latency_ms"]["p99"] for d in dicts), 2),
        "errors": sum(d["error_count"] for d in dicts),
        "runs_ops_s": [d["ops_s"] for d in dicts],
    }


def summarise(concurrency: int, sweep: Sequence[int],
              results: Sequence[PhaseResult]) -> dict[str, Any]:
    groups = _group(results)
    rows = []
    for key in sorted({(op, size, c) for (_, op, size, c) in groups}):
        op, size, c = key
        cairn, swift = groups.get(("cairn", *key), []), groups.get(("swift", *key), [])
        if not cairn or not swift:
            continue
        row: dict[str, Any] = {"op": op, "size_bytes": size, "concurrency": c,
                               "cairn": _cell(cairn), "swift": _cell(swift)}
        for measure in ("ops_s", "mb_s", "cpu"):
            paired = [_ratio(_measure(a, measure), _measure(b, measure), measure)
                      for a, b in zip(cairn, swift, strict=False)]
            row[f"ratio_{measure}"] = round(statistics.median(paired), 2)
            row[f"ratio_{measure}_runs"] = [round(x, 2) for x in paired]
        rows.append(row)
    targets = []
    for name, op, size, measure, goal in TARGETS:
        row = next((r for r in rows if (r["op"], r["size_bytes"], r["concurrency"])
                    == (op, size, concurrency)), None)
        if row is None:
            continue
        field = "server_cpu_ms_per_op" if measure == "cpu" else measure
        of_medians = _ratio(row["cairn"][field], row["swift"][field], measure)
        paired = row[f"ratio_{measure}"]
        targets.append({"target": name, "cairn": row["cairn"][field],
                        "swift": row["swift"][field], "ratio_of_medians": round(of_medians, 2),
                        "ratio": paired, "goal": goal, "met": paired >= goal})
    return {"concurrency": concurrency, "sweep": list(sweep), "cells": rows,
            "targets": targets}


def _unit(measure: str) -> str:
    return {"ops_s": "ops/s", "mb_s": "MB/s", "cpu": "ms CPU/op"}[measure]


def render(result: dict[str, Any]) -> str:
    m, plan, s = result["machine"], result["plan"], result["summary"]
    fs = m["filesystem"]
    lines = [
        f"Command: `{result['command']}` ({result.get('elapsed_s', '?')} s)",
        "",
        f"Run {m['date_utc']} at commit `{m['git_commit']}` (working tree as it was): "
        f"{m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB RAM, kernel "
        f"{m['kernel']}, load average at start {m['loadavg_at_start']}, at the end "
        f"{result.get('loadavg_at_end', '?')}; cairn's data on {fs['type']} `{fs['device']}` "
        f"(rotational: {m['disk_rotational']}), Swift's under `/srv/swift-peer` on the same "
        f"machine; Python {m['python']}, grpcio {m['grpcio']}, protobuf {m['protobuf']}, "
        f"uvloop {m['uvloop']}, py-lmdb {m['py_lmdb']}; OpenStack Swift {m.get('swift', '?')} "
        f"(Debian's packages, `shared/peers/swift/setup.sh`), aiohttp {m.get('aiohttp', '?')}.",
        "",
        "Setup: cairn is `LocalCluster(nodes=3)` (N = 3, W = 2, R = 2, sync \"always\"); "
        "Swift is the 3-replica peer (fsync on every object PUT, 2 of 3 acks, proxy with "
        "one worker per CPU). The same generator (`benchmarks.load.run_phase`) drives both "
        "from this process on uvloop: `cairn.AsyncClient` seeded with every node, and "
        "aiohttp on keep-alive connections to Swift's proxy (tempauth). Server CPU is "
        "user + system time from `/proc` over the three node processes, or over every "
        "Swift process (proxy and its workers, object, container and account servers, "
        "memcached), per successful operation.",
        "",
        f"Each cell ran {plan['duration_s']} s after {plan['warmup']} untimed operations, "
        f"{plan['repeats']} times; in each repeat one system ran all its cells, then the "
        "other (the order alternating). Figures are medians over repeats; a *ratio* is "
        "cairn / Swift (for CPU: Swift / cairn, how many times less CPU cairn spends), the "
        "median of the per-repeat ratios; *of medians* divides the medians. Ratios below "
        "their goal are **bold**.",
        "",
        "### Targets",
        "",
    ]
    rows = [[t["target"], nb.n(t["cairn"]) if "CPU" not in t["target"] else nb.ms(t["cairn"]),
             nb.n(t["swift"]) if "CPU" not in t["target"] else nb.ms(t["swift"]),
             f"{t['ratio_of_medians']:.1f}", nb.goal_cell(t["ratio"], t["goal"]),
             f">= {t['goal']:g}", "yes" if t["met"] else "**no**"] for t in s["targets"]]
    lines += md_table([f"target (c = {s['concurrency']})", "cairn", "Swift", "of medians",
                       "ratio", "goal", "met"], rows)
    lines += ["", "### Every cell", ""]
    rows = []
    for r in s["cells"]:
        a, b = r["cairn"], r["swift"]
        rows.append([r["op"].upper(), nb.size_name(r["size_bytes"]), r["concurrency"],
                     nb.n(a["ops_s"]), nb.n(b["ops_s"]), f"{r['ratio_ops_s']:.1f}",
                     nb.n(a["mb_s"]), nb.n(b["mb_s"]),
                     nb.ms(a["server_cpu_ms_per_op"]), nb.ms(b["server_cpu_ms_per_op"]),
                     f"{r['ratio_cpu']:.1f}", f"{nb.ms(a['p50_ms'])} / {nb.ms(a['p99_ms'])}",
                     f"{nb.ms(b['p50_ms'])} / {nb.ms(b['p99_ms'])}",
                     f"{a['errors']} / {b['errors']}"])
    lines += md_table(["op", "value", "conc.", "cairn ops/s", "Swift ops/s", "ratio",
                       "cairn MB/s", "Swift MB/s", "CPU ms/op cairn", "Swift",
                       "CPU Swift / cairn", "cairn p50 / p99 ms", "Swift p50 / p99 ms",
                       "errors cairn / Swift"], rows)
    lines += ["", "Plots: `benchmarks/plots/compare_throughput.png` (4 KiB ops/s against "
              "concurrency), `benchmarks/plots/compare_latency_cdf.png` (latency CDF of "
              f"every operation of every repeat at c = {s['concurrency']})."]
    return "\n".join(lines) + "\n"


def plot(results: Sequence[PhaseResult], concurrency: int, directory: str) -> list[str]:
    """Throughput against concurrency (4 KiB) and latency CDFs; returns the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(directory, exist_ok=True)
    groups = _group(results)
    colors = {"cairn": "tab:blue", "swift": "tab:red"}
    files = []

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, op in zip(axes, ("put", "get"), strict=True):
        for system in ("cairn", "swift"):
            pts = sorted((c, statistics.median(r.ops_s for r in runs))
                         for (t, o, size, c), runs in groups.items()
                         if t == system and o == op and size == SMALL)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=system,
                        color=colors[system])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrency (clients)")
        ax.set_ylabel("ops/s (median of repeats)")
        ax.set_title(f"4 KiB {op.upper()}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    files.append(os.path.join(directory, "compare_throughput.png"))
    fig.savefig(files[-1], dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, size in zip(axes, (SMALL, LARGE), strict=True):
        for system in ("cairn", "swift"):
            for op, style in (("put", "-"), ("get", "--")):
                runs = groups.get((system, op, size, concurrency), [])
                lat = sorted(x * 1e3 for r in runs for x in r.latencies_s)
                if not lat:
                    continue
                qs = [q / 10 for q in range(1001)]
                ax.plot([percentile(lat, q) for q in qs], [q / 100 for q in qs], style,
                        color=colors[system], label=f"{system} {op.upper()}")
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("share of operations")
        ax.set_title(f"{nb.size_name(size)}, c = {concurrency}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    files.append(os.path.join(directory, "compare_latency_cdf.png"))
    fig.savefig(files[-1], dpi=100)
    plt.close(fig)
    return files
