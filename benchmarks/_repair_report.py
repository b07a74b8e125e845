"""repair_bench's summary (medians, ratios, targets) and its markdown block."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, Final

from . import _netbench as nb
from . import _pyspy
from ._netbench import MiB
from ._report import md_table

TARGET_REBUILD: Final = 0.5
"""Unlimited-rate rebuild MiB/s over the single-stream floor with disk."""
TARGET_FOREGROUND: Final = 0.7
"""Foreground ops/s during a default-rate rebuild over the same cell without repair."""
PROFILE_TOP: Final = 12
CAIRN_DIRS: Final = ("node", "cluster", "client")
ENTRY_FRAMES: Final = ("<module> (node/__main__.py)", "main (node/__init__.py)",
                       "main (node/server/app.py)")
"""Frames on every stack of the event loop thread: left out of the tables."""


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def _rate(nbytes: int, seconds: float | None) -> float:
    return round(nbytes / MiB / seconds, 1) if seconds else 0.0


def summarise_floor(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variant in ("disk", "memory"):
        runs = [r for r in rows if r["variant"] == variant]
        out[variant] = {
            "mib_s": round(_median([r["mib_s"] for r in runs]), 1),
            "runs_mib_s": [r["mib_s"] for r in runs],
            "runs_loadavg_1m": [r.get("loadavg_1m") for r in runs],
            "runs_pressure": [_pressure({k: r[k] for k in ("cpu_some_pct", "io_some_pct")
                                         if k in r}) for r in runs],
            "receiver_cpu_s_per_gib": round(_median(
                [r["receiver_cpu_s"] / (r["total_bytes"] / 2**30) for r in runs]), 2),
        }
    return out


def summarise_rebuild(r: dict[str, Any]) -> dict[str, Any]:
    held = r["live_bytes_before"]
    copy_s = (r["data_back_s"] or 0) - (r["reopened_s"] or 0)
    cpu = r["node_cpu"]
    copied = sum(c["bytes_copied"] for c in r["copied"].values())
    return {
        "name": r["name"], "rate_bytes_s": r["rate_bytes_s"], "foreground": r["foreground"],
        "objects": r["objects_before"], "bytes": held,
        "noticed_s": r["noticed_s"], "reopened_s": r["reopened_s"],
        "data_back_s": r["data_back_s"], "whole_s": r["whole_s"],
        "mib_s_from_wipe": _rate(held, r["data_back_s"]),
        "mib_s_after_reopen": _rate(held, copy_s),
        "node_cores": cpu["cores"],
        "node_cpu_s_per_gib": {n: round(c / (held / 2**30), 2) if held else 0.0
                               for n, c in cpu["cpu_s"].items()},
        "bytes_copied_by_node": {n: c["bytes_copied"] for n, c in r["copied"].items()},
        "copy_amplification": round(copied / held, 2) if held else 0.0,
        "spot_check": r["spot_check"],
        "objects_after": r["objects_after"],
        "peak_below": r["peak_below"], "partitions_per_s": r["partitions_per_s"],
        "loadavg_1m_at_wipe": r.get("loadavg_1m_at_wipe"), "pressure": r.get("pressure", {}),
        "stall_kicks": r.get("stall_kicks", 0), "stuck_partitions": len(r.get("stuck", [])),
    }


def summarise_foreground(plan: Any, runs: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for op in ("put", "get"):
        for size in plan.fg_sizes:
            base = [x for x in runs["baseline"] if x["op"] == op and x["size_bytes"] == size]
            during = [x for x in runs["during"] if x["op"] == op and x["size_bytes"] == size
                      and x["during_repair"]]
            b = _median([x["ops_s"] for x in base])
            d = _median([x["ops_s"] for x in during])
            rows.append({
                "op": op, "size_bytes": size, "baseline_ops_s": round(b, 1),
                "baseline_runs": [x["ops_s"] for x in base],
                "during_ops_s": round(d, 1), "during_runs": [x["ops_s"] for x in during],
                "baseline_server_cpu_ms": round(_median(
                    [x["server_cpu_ms_per_op"] for x in base]), 3),
                "during_server_cpu_ms": round(_median(
                    [x["server_cpu_ms_per_op"] for x in during]), 3),
                "ratio": nb.ratio(d, b) if during else None,
                "baseline_cpu_pressure_pct": round(_median(
                    [x.get("cpu_some_pct", 0) for x in base]), 1),
                "during_cpu_pressure_pct": round(_median(
                    [x.get("cpu_some_pct", 0) for x in during]), 1),
            })
    return rows


def summarise_profiles(rebuild: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for node, path in rebuild.get("profiles", {}).items():
        try:
            prof = _pyspy.load(path, skip_threads=True)
            threads = _thread_shares(path)
        except OSError:
            continue
        out[node] = {
            "samples": prof.samples, "threads": threads,
            "self": [[name, round(pct, 1)] for name, pct in prof.top("self", PROFILE_TOP)],
            "total_cairn": [[name, round(pct, 1)] for name, pct in
                            prof.top("total", 10 * PROFILE_TOP) if _is_cairn(name)][:PROFILE_TOP],
        }
    return out


def _is_cairn(frame: str) -> bool:
    """A frame of cairn's own code (py-spy names files relative to the checkout)."""
    if frame in ENTRY_FRAMES:
        return False
    return any(f"({top}/" in frame or f"/{top}/" in frame for top in CAIRN_DIRS)


def _thread_shares(path: str) -> dict[str, float]:
    """Share of the samples per thread (the first frame ``--threads`` adds)."""
    counts: dict[str, int] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            thread = stack.split(";", 1)[0]
            name = thread.split(": ", 1)[-1].rstrip("_0123456789") or thread
            counts[name] = counts.get(name, 0) + int(count)
    total = sum(counts.values()) or 1
    return {k: round(100 * v / total, 1) for k, v in
            sorted(counts.items(), key=lambda kv: -kv[1])[:6]}


def summarise(plan: Any, runs: dict[str, Any]) -> dict[str, Any]:
    fl = summarise_floor(runs["floor"])
    rebuilds = [summarise_rebuild(r) for r in runs["rebuilds"]]
    fg = summarise_foreground(plan, runs)
    targets = []
    unlimited = next((r for r in rebuilds if r["name"] == "unlimited"), None)
    if unlimited is not None:
        targets.append(nb.target_row(
            "rebuild at unlimited rate (wipe to objects back) vs single-stream floor with disk",
            unlimited["mib_s_from_wipe"], fl["disk"]["mib_s"], "MiB/s", TARGET_REBUILD))
    for row in fg:
        if row["ratio"] is not None:
            targets.append(nb.target_row(
                f"{row['op'].upper()} {nb.size_name(row['size_bytes'])} x{plan.fg_concurrency} "
                "during default-rate rebuild vs without repair",
                row["during_ops_s"], row["baseline_ops_s"], "ops/s", TARGET_FOREGROUND))
    profiled = [r for r in runs["rebuilds"] if r.get("profiles")]
    return {"floor": fl, "rebuilds": rebuilds, "foreground": fg, "targets": targets,
            "in_sync_pass": runs.get("in_sync_pass"), "stuck": runs.get("stuck", []),
            "profiles": summarise_profiles(profiled[0]) if profiled else {},
            "load": runs.get("load", {})}


# --------------------------------------------------------------------------- markdown


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:,.1f}"


def _pressure(p: dict[str, float]) -> str:
    if not p:
        return "-"
    return f"{p.get('cpu_some_pct', 0):.0f} / {p.get('io_some_pct', 0):.0f}"


def _whole(r: dict[str, Any]) -> str:
    if r["whole_s"] is not None:
        return _s(r["whole_s"])
    return f"**never** ({r['stuck_partitions']} partition(s) stuck)"


def _interval(plan: dict[str, Any]) -> str:
    if plan["antientropy_interval_s"] is None:
        return ("default settings (anti-entropy every 600 s: passes start when a node "
                "takes a disk back and on `Repair` calls)")
    return (f"`CAIRN_ANTIENTROPY_INTERVAL_S={plan['antientropy_interval_s']:g}` and "
            "otherwise default settings")


def _rate_name(rate: int) -> str:
    return "unlimited" if rate == 0 else f"{rate / MiB:.0f} MiB/s"


def render(result: dict[str, Any]) -> str:
    s, plan, m = result["summary"], result["plan"], result["machine"]
    fs = m["filesystem"]
    ds = result.get("data_set", {})
    by_size = ", ".join(f"{count} x {nb.size_name(int(size))}"
                        for size, count in sorted(ds.get("by_size", {}).items(),
                                                  key=lambda kv: int(kv[0])))
    load = s["load"]
    lines = [
        f"Command: `{result['command']}` ({result.get('elapsed_s', '?')} s)",
        "",
        f"Run {m['date_utc']} at commit `{m['git_commit']}` (working tree as it was): "
        f"{m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB RAM, kernel "
        f"{m['kernel']}, load average at start {m['loadavg_at_start']}; data under "
        f"`{m['directory']}` on {fs['type']} `{fs['device']}` (rotational: "
        f"{m['disk_rotational']}) mounted at `{fs['mount']}`; Python {m['python']}, grpcio "
        f"{m['grpcio']}, protobuf {m['protobuf']}, uvloop {m['uvloop']}, py-lmdb "
        f"{m['py_lmdb']} (LMDB {m['liblmdb']}).",
        "",
        "Setup: `LocalCluster(nodes=3)` (N = 3, W = 2, R = 2, sync \"always\", every node "
        f"a replica of every partition, {result.get('partitions', '?')} partitions), nodes "
        f"with {_interval(plan)}. Data set: {ds.get('objects', '?')} objects, "
        f"{ds.get('bytes', 0) / MiB:,.0f} MiB ({by_size}), loaded by `AsyncClient` with "
        f"{plan['load_concurrency']} in flight in {load.get('elapsed_s', '?')} s "
        f"({load.get('mib_s', '?')} MiB/s of objects). Node {plan['wipe_node']}'s data "
        "directory is emptied while it runs (`rm -rf dir/*`); the clock starts then. "
        "*Noticed*: its status first shows the disk failed or objects missing; *reopened*: "
        "the disk is \"ok\" again (empty; the node starts an anti-entropy pass itself, "
        "and every node is sent `Repair`, not waited for); *objects back*: its object "
        "count is what it held; *whole*: every node has since finished two anti-entropy "
        "passes (each node is sent `Repair` every second once the objects are back) and "
        "reports 0 partitions below redundancy. *Stall kicks*: `Repair` calls sent to "
        "every node because the wiped node's object count had not moved for 10 s (without "
        "them that rebuild would have waited for the next scheduled pass). "
        "Statuses are polled every 0.25 s. MiB/s is the wiped node's live bytes before the "
        "wipe over the time to *objects back* (from the wipe, and from the reopen). "
        "*Partitions/s*: how fast the wiped node's count of partitions below "
        "redundancy fell from its peak to 0. *Copied / held*: bytes all nodes report "
        "copied during the rebuild over the bytes rebuilt (1.0 = each byte copied once). "
        "Node CPU is from `/proc/<pid>/stat`, wipe to whole. *Machine CPU / IO pressure*: "
        "share of the time some task on this machine (other tenants included) waited for a "
        "CPU / for I/O (`/proc/pressure`), over the same span. *unlimited+N partitions at "
        "once* is a what-if: the unlimited rebuild, while this benchmark also sends the wiped "
        "node `Repair(partition=p, wait=True)` for every partition, N at a time, so that it "
        "levels N partitions at once (its own worker levels one at a time; object copies "
        "stay capped by the worker's 4 in flight).",
        "",
        "### Rebuild of a wiped node",
        "",
    ]
    rows = []
    for r in s["rebuilds"]:
        cores = "/".join(f"{r['node_cores'][n]:.2f}" for n in sorted(r["node_cores"]))
        sc = r["spot_check"]
        rows.append([r["name"], _rate_name(r["rate_bytes_s"]), f"{r['objects']:,}",
                     f"{r['bytes'] / MiB:,.0f}", _s(r["noticed_s"]), _s(r["reopened_s"]),
                     _s(r["data_back_s"]), _whole(r), _s(r["mib_s_from_wipe"]),
                     _s(r["mib_s_after_reopen"]), _s(r["partitions_per_s"] or None),
                     f"{r['copy_amplification']:.2f}", r["stall_kicks"], cores,
                     f"{sc['ok']}/{sc['checked']}", _s(r["loadavg_1m_at_wipe"]),
                     _pressure(r["pressure"])])
    lines += md_table(["rebuild", "repair rate", "objects", "MiB held", "noticed s",
                       "reopened s", "objects back s", "whole s", "MiB/s from wipe",
                       "MiB/s from reopen", "partitions/s", "copied / held", "stall kicks",
                       "node CPU cores (1/2/3)",
                       "spot check byte-exact", "load avg at wipe",
                       "machine CPU / IO pressure %"], rows)
    fl = s["floor"]
    sync = s.get("in_sync_pass")
    if sync:
        cpu = sync["node_cpu"]["cpu_s"]
        per_node = " / ".join(f"{cpu[n]:.1f}" for n in sorted(cpu))
        lines += [
            "",
            f"One anti-entropy pass of node 1 over an in-sync cluster (`Repair(wait=True)`, "
            f"digests cached, {sync['partitions']} partitions, so "
            f"{2 * sync['partitions']:,} `PartitionDigest` calls to its peers): "
            f"**{sync['elapsed_s']} s**, node CPU {per_node} s (nodes 1/2/3).",
        ]
    lines += [
        "",
        f"Single-stream floor (`benchmarks/_stream_floor.py`), {plan['floor_repeats']} run(s) "
        f"of {ds.get('bytes', 0) / MiB:,.0f} MiB each (just before the unlimited rebuild, "
        "just after the what-if one, then at the start), median: one gRPC stream of 1 MiB messages "
        "from this process to a receiver process (grpc.aio on uvloop, raw bytes) that writes "
        "them to a file from one thread, fsync every 8 MiB: "
        f"**{fl['disk']['mib_s']:,.1f} MiB/s** (runs {fl['disk']['runs_mib_s']}, machine "
        f"CPU / IO pressure {fl['disk']['runs_pressure']} %, receiver "
        f"CPU {fl['disk']['receiver_cpu_s_per_gib']} s/GiB); the same stream without the "
        f"disk: **{fl['memory']['mib_s']:,.1f} MiB/s** (runs {fl['memory']['runs_mib_s']}, "
        f"receiver CPU {fl['memory']['receiver_cpu_s_per_gib']} s/GiB).",
        "",
        "### Foreground traffic during a default-rate rebuild",
        "",
        f"`AsyncClient`, {plan['fg_concurrency']} coroutines, {plan['fg_duration_s']} s per "
        f"cell: PUTs overwrite {plan['fg_put_keys']} prefilled keys per coroutine, GETs read "
        f"{plan['fg_get_keys']} prefilled keys at random. *Without repair*: "
        f"{plan['fg_repeats']} run(s) per cell on the converged cluster (just before and "
        "just after the \"default+foreground\" rebuild, then at the start and after the "
        "unlimited rebuild). *During "
        "repair*: the cells in turn from the wipe on, in the \"default+foreground\" rebuild; "
        "only cells that ended before the wiped node had its objects back count. Medians.",
        "",
    ]
    rows = []
    for r in s["foreground"]:
        ratio = "-" if r["ratio"] is None else nb.goal_cell(r["ratio"], TARGET_FOREGROUND)
        rows.append([r["op"].upper(), nb.size_name(r["size_bytes"]), nb.n(r["baseline_ops_s"]),
                     ", ".join(nb.n(x) for x in r["baseline_runs"]), nb.n(r["during_ops_s"]),
                     ", ".join(nb.n(x) for x in r["during_runs"]) or "-", ratio,
                     nb.ms(r["baseline_server_cpu_ms"]), nb.ms(r["during_server_cpu_ms"]),
                     f"{r['baseline_cpu_pressure_pct']:.0f} / {r['during_cpu_pressure_pct']:.0f}"])
    lines += md_table(["op", "value", "without repair ops/s", "runs", "during repair ops/s",
                       "runs", "ratio", "server CPU ms/op without", "during",
                       "machine CPU pressure % without / during"], rows)
    stuck = [(x["phase"], p) for x in s.get("stuck", []) for p in x["partitions"]]
    if stuck:
        lines += ["", "### Partitions that never levelled", "",
                  "Every node held the same objects, yet these partitions' hash trees "
                  "differed and kept them below redundancy (nothing to copy, so nothing "
                  "invalidated the cached tree). *Stale digest*: every node lists the same "
                  "entries. The benchmark healed each by putting one new object into it.", ""]
        lines += md_table(["when", "partition", "digest entries (1/2/3)",
                           "listed entries (1/2/3)", "stale digest"], [
            [phase, p["partition"],
             " / ".join(str(p["digest_entries"][n]) for n in sorted(p["digest_entries"])),
             " / ".join(str(p["listed_entries"][n]) for n in sorted(p["listed_entries"])),
             "yes" if p["stale_digest"] else "no"] for phase, p in stuck])
    if s["targets"]:
        lines += ["", "### Targets", ""]
        lines += md_table(["target", "figure", "reference", "ratio", "goal", "met"], [
            [t["target"], f"{nb.n(t['figure'])} {t['unit']}", f"{nb.n(t['floor'])} {t['unit']}",
             f"{t['ratio']:.2f}", f">= {t['goal']:.1f}", "yes" if t["met"] else "**no**"]
            for t in s["targets"]])
    if s["profiles"]:
        lines += ["", "### py-spy during the profiled unlimited rebuild", "",
                  "Samples of the thread holding the GIL at 100 Hz (`py-spy record --gil "
                  "--nonblocking --threads -f raw`), summed by function "
                  "(`benchmarks/_pyspy.py`); *self*: innermost frame; *total*: anywhere on "
                  "the stack (cairn frames only).", ""]
        for node, p in sorted(s["profiles"].items()):
            threads = ", ".join(f"{k} {v}%" for k, v in p["threads"].items())
            lines += [f"Node {node}: {p['samples']:,} samples; threads: {threads}", ""]
            width = max(len(p["self"]), len(p["total_cairn"]))
            rows = []
            for i in range(min(width, 8)):
                a = p["self"][i] if i < len(p["self"]) else ["", ""]
                b = p["total_cairn"][i] if i < len(p["total_cairn"]) else ["", ""]
                rows.append([f"`{a[0]}`", a[1], f"`{b[0]}`", b[1]])
            lines += md_table(["self", "%", "total (cairn)", "%"], rows)
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
