"""What every benchmark report needs: the machine it ran on, markdown tables, and
replacing one generated block of benchmarks/RESULTS.md while leaving the rest alone.

A benchmark owns one ``## Section`` of RESULTS.md. Inside it, the text between
``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` is rewritten by each run; anything
else in the section (profiles, conclusions written by hand) is kept.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

RESULTS_HEADER = (
    "# Benchmark results\n\n"
    "Each section belongs to one benchmark under `benchmarks/` and says how to rerun it.\n"
    "Figures are medians of repeated runs on a shared machine: compare ratios to floors\n"
    "measured in the same run, not raw figures across runs.\n"
)


def filesystem_of(path: str) -> dict[str, str]:
    """Device, type, mount point and options of the file system holding ``path``."""
    real = os.path.realpath(path)
    best = {"device": "?", "type": "?", "mount": "/", "options": ""}
    best_len = -1
    try:
        with open("/proc/self/mounts", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 4:
                    continue
                mount = parts[1].replace("\\040", " ")
                inside = real == mount or real.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) > best_len:
                    best_len = len(mount)
                    best = {"device": parts[0], "type": parts[2], "mount": mount,
                            "options": parts[3]}
    except OSError:
        pass
    return best


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _mem_total_gib() -> float:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / (1024 * 1024), 1)
    except OSError:
        pass
    return 0.0


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def _git_commit() -> str:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "?"
    return out.stdout.strip() or "?"


def machine_info(directory: str) -> dict[str, Any]:
    """Facts about this machine and the file system ``directory`` lives on."""
    import lmdb

    return {
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0,
        "cpu_model": _cpu_model(),
        "memory_gib": _mem_total_gib(),
        "kernel": platform.release(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "py_lmdb": lmdb.__version__,
        "liblmdb": ".".join(str(x) for x in lmdb.version()),
        "crc32c": _version("crc32c"),
        "git_commit": _git_commit(),
        "directory": os.path.realpath(directory),
        "filesystem": filesystem_of(directory),
    }


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A markdown table, numbers right-aligned."""
    aligns = []
    for i in range(len(headers)):
        numeric = rows and all(isinstance(r[i], int | float) or _looks_numeric(r[i])
                               for r in rows)
        aligns.append("---:" if numeric else "---")
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(aligns) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines


def _looks_numeric(cell: object) -> bool:
    text = str(cell).replace(",", "").rstrip("%x").strip()
    try:
        float(text)
    except ValueError:
        return False
    return True


def update_results_section(path: str, section: str, marker: str, block: str) -> None:
    """Put ``block`` between the markers inside ``## section`` of the file at ``path``,
    creating the file, the section or the markers as needed."""
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    generated = f"{begin}\n{block.rstrip()}\n{end}"
    text = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
    if not text.strip():
        text = RESULTS_HEADER
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + generated + tail
    else:
        heading = f"## {section}"
        lines = text.splitlines()
        if heading in lines:
            at = lines.index(heading) + 1
            lines[at:at] = ["", generated]
            text = "\n".join(lines)
        else:
            text = text.rstrip() + f"\n\n{heading}\n\n{generated}\n"
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text.rstrip() + "\n")
    os.replace(path + ".tmp", path)
