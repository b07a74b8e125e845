"""What sdk_bench and cluster_bench share: the run directory, the machine facts, the event
loop, the cell results (repeats -> median) and the pieces of their markdown.

A cell is keyed ``(system, op, size_bytes, concurrency)``; ``system`` names what served
it (``sdk``, ``echo``, ``cluster``, ``fanout-stream``, ...). Its repeats are kept; the
report shows the median run (by ops/s) with its CPU figures and the min-max of the runs.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Coroutine, Sequence
from typing import Any, Final, TypeVar

from cairn.cluster.launcher import LocalCluster

from . import _report
from ._load import NetSample

T = TypeVar("T")
KiB: Final = 1024
MiB: Final = 1024 * KiB
NOT_A_DISK: Final = ("tmpfs", "ramfs", "devtmpfs")
RESULTS_PATH: Final = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")

CellKey = tuple[str, str, int, int]
Runs = dict[CellKey, list[NetSample]]


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def base_dir(requested: str | None, prefix: str) -> str:
    """A fresh directory for this run (removed at the end) under ``requested`` or $TMPDIR.

    Raises:
        SystemExit: the default temp dir is not on a disk (tmpfs): pass --dir.
    """
    if requested:
        os.makedirs(requested, exist_ok=True)
        return tempfile.mkdtemp(prefix=prefix, dir=requested)
    base = tempfile.mkdtemp(prefix=prefix)
    if _report.filesystem_of(base)["type"] in NOT_A_DISK:
        shutil.rmtree(base)
        raise SystemExit(f"{tempfile.gettempdir()} is not on a disk; pass --dir DIR")
    return base


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def machine(directory: str) -> dict[str, Any]:
    """``_report.machine_info`` plus what a network benchmark depends on."""
    info = _report.machine_info(directory)
    usage = shutil.disk_usage(directory)
    device = os.path.basename(info["filesystem"]["device"])
    rotational = "?"
    try:
        with open(f"/sys/block/{device}/queue/rotational", encoding="ascii") as f:
            rotational = "yes" if f.read().strip() == "1" else "no"
    except OSError:
        pass
    info.update({
        "grpcio": _version("grpcio"), "protobuf": _version("protobuf"),
        "uvloop": _version("uvloop"), "cairnstore": _version("cairnstore"),
        "disk_total_gib": round(usage.total / 2**30, 1),
        "disk_free_gib": round(usage.free / 2**30, 1), "disk_rotational": rotational,
    })
    return info


def local_cluster(directory: str, nodes: int, node_command: Sequence[str] | None
                  ) -> LocalCluster:
    """A local cluster of ``nodes`` nodes with sync "always" (the default, said
    explicitly), not yet started."""
    return LocalCluster(directory, nodes=nodes, node_args=["--sync", "always"],
                        node_command=node_command)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run the benchmark's client side on uvloop, as the node runs its server side."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with the node extra
        return asyncio.run(coro)
    return uvloop.run(coro)


def client_loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:  # pragma: no cover
        return "asyncio"
    return "uvloop"


# --------------------------------------------------------------------------- summaries


def cell(runs: list[NetSample]) -> dict[str, Any]:
    """The median run of a cell (by ops/s) and the spread of all runs."""
    ordered = sorted(runs, key=lambda s: s.ops_s)
    med = ordered[(len(ordered) - 1) // 2]
    return {
        "ops_s": round(med.ops_s, 1), "mb_s": round(med.mb_s, 1),
        "server_cpu_ms_per_op": round(med.server_cpu_ms_per_op, 3),
        "client_cpu_ms_per_op": round(med.client_cpu_ms_per_op, 3),
        "ops": med.ops, "runs_ops_s": [round(s.ops_s, 1) for s in runs],
        "runs_mb_s": [round(s.mb_s, 1) for s in runs],
    }


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def paired_ratio(runs: Sequence[NetSample], floor_runs: Sequence[NetSample], *,
                 by: str = "ops_s") -> float:
    """The median over repeats of (run / floor run of the same repeat).

    A cell and its floor run back to back in each repeat, so the load other programs put
    on a shared machine hits both alike; a ratio per repeat cancels most of it, where a
    ratio of two medians (from different repeats) would not.
    """
    ratios = sorted(ratio(getattr(a, by), getattr(b, by))
                    for a, b in zip(runs, floor_runs, strict=False))
    if not ratios:
        return 0.0
    mid = len(ratios) // 2
    return ratios[mid] if len(ratios) % 2 else round((ratios[mid - 1] + ratios[mid]) / 2, 3)


def cells_json(runs: Runs) -> list[dict[str, Any]]:
    """Every repeat of every cell, for ``--out``."""
    return [{"system": k[0], "op": k[1], "size_bytes": k[2], "concurrency": k[3],
             "runs": [s.as_dict() for s in samples]} for k, samples in runs.items()]


def target_row(name: str, figure: float, floor: float, unit: str, goal: float,
               paired: float | None = None) -> dict[str, Any]:
    """One target: the medians of the cell and its floor, and their ratio (``paired``
    when given, see ``paired_ratio``; else figure / floor)."""
    r = ratio(figure, floor) if paired is None else paired
    return {"target": name, "figure": figure, "floor": floor, "unit": unit, "ratio": r,
            "goal": goal, "met": r >= goal}


# --------------------------------------------------------------------------- markdown


def size_name(size: int) -> str:
    if size >= MiB and size % MiB == 0:
        return f"{size // MiB} MiB"
    return f"{size // KiB} KiB" if size % KiB == 0 else f"{size} B"


def n(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 10 else f"{x:,.1f}"


def ms(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:,.0f}"


def spread(runs: Sequence[float]) -> str:
    """min-max of the runs (thousands when large)."""
    if len(runs) < 2:
        return "-"
    lo, hi = min(runs), max(runs)
    if hi >= 1000:
        return f"{lo / 1000:.1f}-{hi / 1000:.1f}k"
    return f"{lo:.0f}-{hi:.0f}"


def goal_cell(r: float, goal: float | None) -> str:
    if goal is None:
        return f"{r:.2f}"
    return f"{r:.2f}" if r >= goal else f"**{r:.2f}**"


def header(result: dict[str, Any], setup: str) -> list[str]:
    m, plan = result["machine"], result["plan"]
    fs = m["filesystem"]
    return [
        f"Command: `{result['command']}` ({result.get('elapsed_s', '?')} s)",
        "",
        f"Run {m['date_utc']} at commit `{m['git_commit']}` (working tree as it was): "
        f"{m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB RAM, kernel "
        f"{m['kernel']}, load average at start {m['loadavg_at_start']}; data under "
        f"`{m['directory']}` on {fs['type']} `{fs['device']}` ({m['disk_total_gib']} GiB, "
        f"rotational: {m['disk_rotational']}) mounted at `{fs['mount']}` ({fs['options']}); "
        f"Python {m['python']}, grpcio {m['grpcio']}, protobuf {m['protobuf']}, uvloop "
        f"{m['uvloop']}, py-lmdb {m['py_lmdb']} (LMDB {m['liblmdb']}).",
        "",
        setup,
        "",
        f"Small-object cells ran {plan['duration_s']} s each, {plan['repeats']} time(s); "
        f"large-object cells {plan['large_duration_s']} s (at least 2 objects), "
        f"{plan.get('large_repeats', plan['repeats'])} time(s). Repeats are interleaved "
        "(a cell and its floor back to back, changing which goes first); figures are "
        "medians, *range* is min-max over the repeats, and a *ratio* is the median over "
        "repeats of the ratio within one repeat (steadier on a shared machine than a ratio "
        "of medians). Load average at the end: "
        f"{result.get('loadavg_at_end', '?')}. *Server CPU* is user + system time of the "
        "server process(es) from `/proc/<pid>/stat` per operation (all threads); *client "
        "CPU* is this benchmark process's. Ratios below their goal are "
        "**bold**.",
        "",
    ]


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def write_outputs(result: dict[str, Any], text: str, *, out: str | None,
                  results: str | None, quick: bool, no_results: bool, section: str,
                  marker: str) -> None:
    print(text)
    if out:
        with open(out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    path = results or (None if quick else RESULTS_PATH)
    if path and not no_results:
        _report.update_results_section(path, section, marker, text)
        log(f"updated {path}")


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)
