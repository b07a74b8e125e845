"""engine_bench's figures: medians, floors and ratios as JSON-able data, and the markdown
block written to the "Storage engine" section of benchmarks/RESULTS.md."""

from __future__ import annotations

from typing import Any, Final

from . import _floors
from ._report import md_table
from ._timing import Sample, median_sample

KiB: Final = 1024
MiB: Final = 1024 * KiB
INLINE_MAX_BYTES: Final = 4096

# Targets (issue "engine benchmark"): figure / floor must reach these.
TARGET_PUT_GROUP_COMMIT: Final = 0.5
TARGET_GET_RAW: Final = 0.7
TARGET_PUT_SEQUENTIAL: Final = 0.7

PutRuns = dict[tuple[str, int, int], list[tuple[Sample, float]]]
GetRuns = dict[tuple[str, int, int], list[Sample]]


def size_name(size: int) -> str:
    if size >= MiB and size % MiB == 0:
        return f"{size // MiB} MiB"
    return f"{size // KiB} KiB" if size % KiB == 0 else f"{size} B"


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def _cell(runs: list[Sample], size: int) -> dict[str, Any]:
    med = median_sample(runs)
    return {
        "ops_s": round(med.ops_s, 1),
        "mb_s": round(med.ops_s * size / MiB, 1),
        "cpu_us_per_op": round(med.cpu_us_per_op, 1),
        "runs_ops_s": [round(s.ops_s, 1) for s in runs],
    }


def _put_cell(runs: list[tuple[Sample, float]], size: int) -> dict[str, Any]:
    per_batch = sorted(b for _, b in runs)[(len(runs) - 1) // 2]
    return {**_cell([s for s, _ in runs], size), "records_per_commit": round(per_batch, 1)}


def _summarise_puts(sizes: tuple[int, ...], writers_list: tuple[int, ...], runs: PutRuns,
                    sequential: list[Sample], out: dict[str, Any]) -> None:
    floors = out["floors"]
    if sequential:
        med = median_sample(sequential)
        floors["sequential_write"] = {
            "mb_s": round(med.ops_s, 1), "runs_mb_s": [round(s.ops_s, 1) for s in sequential],
            "write_bytes": _floors.SEQ_WRITE_BYTES,
            "fsync_every_bytes": _floors.SEQ_SYNC_EVERY_BYTES,
        }
    for size in sizes:
        for writers in writers_list:
            gc = _put_cell(runs[("floor_gc", size, writers)], size)
            gci = _put_cell(runs[("floor_gc_index", size, writers)], size)
            floors["group_commit"].append({"size_bytes": size, "writers": writers, **gc})
            floors["group_commit_index"].append({"size_bytes": size, "writers": writers, **gci})
            for mode in ("threads", "pipeline"):
                row = {"size_bytes": size, "writers": writers, "mode": mode,
                       **_put_cell(runs[(mode, size, writers)], size)}
                row.update({
                    "floor_ops_s": gc["ops_s"], "ratio": _ratio(row["ops_s"], gc["ops_s"]),
                    "floor_index_ops_s": gci["ops_s"],
                    "ratio_index": _ratio(row["ops_s"], gci["ops_s"]),
                })
                if size == MiB and floors["sequential_write"]:
                    row["ratio_sequential"] = _ratio(row["mb_s"],
                                                     floors["sequential_write"]["mb_s"])
                out["puts"].append(row)
                inline_runs = runs.get((f"{mode}_inline", size, writers))
                if inline_runs:
                    cell = _put_cell(inline_runs, size)
                    out["inline_puts"].append({
                        "size_bytes": size, "writers": writers, "mode": mode,
                        "inline_0_ops_s": row["ops_s"], "inline_4096_ops_s": cell["ops_s"],
                        "ratio": _ratio(cell["ops_s"], row["ops_s"]),
                        "inline_4096_runs_ops_s": cell["runs_ops_s"],
                    })


def _summarise_gets(runs: GetRuns, out: dict[str, Any]) -> None:
    floors = out["floors"]
    names = {"floor": "raw_read", "floor_crc": "raw_read_crc", "floor_inline": "raw_read_inline"}
    for (name, size, threads), cell_runs in sorted(runs.items()):
        if name in names:
            floors[names[name]].append({"size_bytes": size, "threads": threads,
                                        **_cell(cell_runs, size)})

    def floor(name: str, size: int, threads: int) -> float:
        return median_sample(runs[(name, size, threads)]).ops_s if (
            name, size, threads) in runs else 0.0

    for (name, size, threads), cell_runs in sorted(runs.items()):
        if not name.startswith("engine"):
            continue
        row = {"size_bytes": size, "threads": threads,
               "inline_max_bytes": INLINE_MAX_BYTES if name == "engine_inline" else 0,
               **_cell(cell_runs, size)}
        raw, crc = floor("floor", size, threads), floor("floor_crc", size, threads)
        row.update({"floor_ops_s": round(raw, 1), "ratio": _ratio(row["ops_s"], raw),
                    "floor_crc_ops_s": round(crc, 1), "ratio_crc": _ratio(row["ops_s"], crc)})
        if name == "engine_inline":
            inline_floor = floor("floor_inline", size, threads)
            row["floor_inline_ops_s"] = round(inline_floor, 1)
            row["ratio_inline_floor"] = _ratio(row["ops_s"], inline_floor)
            plain = floor("engine", size, threads)
            out["inline"].append({
                "size_bytes": size, "threads": threads, "inline_0_ops_s": round(plain, 1),
                "inline_4096_ops_s": row["ops_s"], "speedup": _ratio(row["ops_s"], plain),
                "floor_inline_ops_s": row["floor_inline_ops_s"],
            })
        out["gets"].append(row)


def summarise(sizes: tuple[int, ...], writers: tuple[int, ...], puts: dict[str, Any] | None,
              gets: GetRuns | None) -> dict[str, Any]:
    """Medians, floors and ratios as plain JSON-able data."""
    out: dict[str, Any] = {
        "puts": [], "gets": [], "inline": [], "inline_puts": [], "targets": [],
        "floors": {"group_commit": [], "group_commit_index": [], "sequential_write": None,
                   "raw_read": [], "raw_read_crc": [], "raw_read_inline": []},
    }
    if puts is not None:
        _summarise_puts(sizes, writers, puts["runs"], puts["sequential"], out)
    if gets is not None:
        _summarise_gets(gets, out)
    out["targets"] = _targets(out)
    return out


def _targets(out: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for p in out["puts"]:
        if p["size_bytes"] == KiB and p["writers"] == 16:
            rows.append({"target": f"put 1 KiB, 16 writers ({p['mode']}) vs group-commit floor",
                         "figure": p["ops_s"], "floor": p["floor_ops_s"], "unit": "ops/s",
                         "ratio": p["ratio"], "goal": TARGET_PUT_GROUP_COMMIT})
    for g in out["gets"]:
        if g["inline_max_bytes"] == 0:
            rows.append({"target": f"get {size_name(g['size_bytes'])}, {g['threads']} "
                                   "thread(s) vs raw-read floor",
                         "figure": g["ops_s"], "floor": g["floor_ops_s"], "unit": "ops/s",
                         "ratio": g["ratio"], "goal": TARGET_GET_RAW})
    seq = out["floors"]["sequential_write"]
    for p in out["puts"]:
        if p["size_bytes"] == MiB and seq:
            rows.append({"target": f"put 1 MiB, {p['writers']} writers ({p['mode']}) vs "
                                   "sequential-write floor",
                         "figure": p["mb_s"], "floor": seq["mb_s"], "unit": "MB/s",
                         "ratio": p["ratio_sequential"], "goal": TARGET_PUT_SEQUENTIAL})
    for row in rows:
        row["met"] = row["ratio"] >= row["goal"]
    return rows


# ---------------------------------------------------------------------- markdown


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _spread(runs: list[float]) -> str:
    """min-max of the runs, in thousands of ops/s."""
    if len(runs) < 2:
        return "-"
    return f"{min(runs) / 1000:.1f}-{max(runs) / 1000:.1f}k"


def _header(result: dict[str, Any]) -> list[str]:
    m, plan = result["machine"], result["plan"]
    fs = m["filesystem"]
    return [
        f"Command: `{result['command']}` ({result.get('elapsed_s', '?')} s)",
        "",
        f"Run {m['date_utc']} at commit `{m['git_commit']}`: {m['nproc']} CPUs "
        f"({m['cpu_model']}), {m['memory_gib']} GiB RAM, kernel {m['kernel']}, load average "
        f"at start {m['loadavg_at_start']}; directory `{m['directory']}` on {fs['type']} "
        f"`{fs['device']}` mounted at `{fs['mount']}` ({fs['options']}); Python "
        f"{m['python']}, py-lmdb {m['py_lmdb']} (LMDB {m['liblmdb']}), crc32c {m['crc32c']}.",
        "",
        f"Each cell ran {plan['duration_s']} s, {plan['repeats']} time(s), repeats "
        "interleaved; figures are medians, *range* is min-max over the repeats. Engine: "
        "default EngineConfig (sync \"always\", inline_max_bytes 0) unless said. CPU is "
        "process CPU (all threads, user + system) per operation.",
        "",
    ]


def _puts_md(s: dict[str, Any]) -> list[str]:
    lines = ["### Puts (sync \"always\") vs the group-commit floor", "",
             "*threads*: N threads calling `put`; *pipeline*: one thread keeping N "
             "`submit_put` in flight. *Floor*: N threads appending a record of the same size "
             "to one file, one shared fdatasync per batch. *Floor+LMDB*: the same plus one "
             "synced LMDB commit per batch (the engine's whole ritual, without the engine).", ""]
    rows = [[size_name(p["size_bytes"]), p["writers"], p["mode"], _n(p["ops_s"]),
             _spread(p["runs_ops_s"]), _n(p["mb_s"]), _n(p["floor_ops_s"]),
             f"{p['ratio']:.2f}", _n(p["floor_index_ops_s"]), f"{p['ratio_index']:.2f}",
             p["records_per_commit"], _n(p["cpu_us_per_op"])] for p in s["puts"]]
    lines += md_table(["value", "writers", "mode", "engine ops/s", "range", "MB/s",
                       "floor ops/s", "ratio", "floor+LMDB ops/s", "ratio", "records/commit",
                       "CPU µs/op"], rows)
    fl = s["floors"]
    rows = [[size_name(f["size_bytes"]), f["writers"], _n(f["ops_s"]), _spread(f["runs_ops_s"]),
             f["records_per_commit"], _n(i["ops_s"]), _spread(i["runs_ops_s"]),
             _n(f["cpu_us_per_op"])]
            for f, i in zip(fl["group_commit"], fl["group_commit_index"], strict=True)]
    lines += ["", "The floors by themselves:", ""]
    lines += md_table(["value", "writers", "appends+fdatasync ops/s", "range", "records/fsync",
                       "+LMDB commit ops/s", "range", "CPU µs/op"], rows)
    if fl["sequential_write"]:
        sw = fl["sequential_write"]
        lines += ["", f"Sequential-write floor (1 MiB writes, fsync every 8 MiB, one thread): "
                      f"**{_n(sw['mb_s'])} MB/s** (runs {sw['runs_mb_s']})."]
    return [*lines, ""]


def _gets_md(s: dict[str, Any]) -> list[str]:
    lines = ["### Gets vs the raw-read floor", "",
             "*Floor*: one short LMDB read transaction + one `os.pread` from an open fd, no "
             "checksum. *Floor+CRC*: the same plus a CRC32C of the value, which every engine "
             "read must do (STYLE 2.4). Same key count and sizes, random key order, warm page "
             "cache.", ""]
    rows = [[size_name(g["size_bytes"]), g["threads"], g["inline_max_bytes"], _n(g["ops_s"]),
             _spread(g["runs_ops_s"]), _n(g["mb_s"]), _n(g["floor_ops_s"]), f"{g['ratio']:.2f}",
             _n(g["floor_crc_ops_s"]), f"{g['ratio_crc']:.2f}", _n(g["cpu_us_per_op"])]
            for g in s["gets"]]
    lines += md_table(["value", "threads", "inline_max_bytes", "engine ops/s", "range", "MB/s",
                       "floor ops/s", "ratio", "floor+CRC ops/s", "ratio", "CPU µs/op"], rows)
    return [*lines, ""]


def _inline_md(s: dict[str, Any]) -> list[str]:
    lines = ["### Inlining 1 KiB values: inline_max_bytes 4096 vs 0", ""]
    if s["inline"]:
        rows = [[size_name(i["size_bytes"]), i["threads"], _n(i["inline_0_ops_s"]),
                 _n(i["inline_4096_ops_s"]), f"{i['speedup']:.2f}x",
                 _n(i["floor_inline_ops_s"])] for i in s["inline"]]
        lines += ["Gets:", ""]
        lines += md_table(["value", "threads", "inline 0 ops/s", "inline 4096 ops/s",
                           "speedup", "floor: value in LMDB, ops/s"], rows)
        lines.append("")
    if s["inline_puts"]:
        rows = [[size_name(i["size_bytes"]), i["writers"], i["mode"], _n(i["inline_0_ops_s"]),
                 _n(i["inline_4096_ops_s"]), f"{i['ratio']:.2f}"] for i in s["inline_puts"]]
        lines += ["Puts (the value is then written twice: segment and index):", ""]
        lines += md_table(["value", "writers", "mode", "inline 0 ops/s", "inline 4096 ops/s",
                           "ratio"], rows)
        lines.append("")
    return lines


def render(result: dict[str, Any]) -> str:
    """The generated markdown block (also printed to the terminal)."""
    s = result["summary"]
    lines = _header(result)
    if s["puts"]:
        lines += _puts_md(s)
    if s["gets"]:
        lines += _gets_md(s)
    if s["inline"] or s["inline_puts"]:
        lines += _inline_md(s)
    if s["targets"]:
        rows = [[t["target"], f"{_n(t['figure'])} {t['unit']}", f"{_n(t['floor'])} {t['unit']}",
                 f"{t['ratio']:.2f}", f">= {t['goal']:.2f}", "yes" if t["met"] else "**no**"]
                for t in s["targets"]]
        lines += ["### Targets", ""]
        lines += md_table(["target", "engine", "floor", "ratio", "goal", "met"], rows)
    return "\n".join(lines) + "\n"
