"""``python -m tests.chaos.summary HISTORY...``: the totals of one or more chaos runs.

Reads kept history files (``python -m tests.chaos --history FILE``), runs the checker on
each again, and prints the figures docs/chaos.md records for a long run: rounds,
operations by outcome, faults by kind, violations by kind, and the time until the
replicas were identical after each round's repair (median and max), as a Markdown table
row per run and one for the total.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path

from . import checker
from .history import load


def summarize(path: Path) -> dict[str, object]:
    entries = load(path)
    report = checker.check(entries)
    marks = [e for e in entries if e["type"] == "mark"]
    seed = next((m["seed"] for m in marks if "seed" in m), None)
    checked = [m for m in marks if m.get("phase") == "checked"]
    compared = [m["keys"] for m in marks if m.get("phase") == "final-reads"]
    bad_checksum = sum(1 for e in entries if e["type"] == "invoke" and e["f"] == "put"
                       and (e.get("value") or {}).get("bad_checksum"))
    return {"file": path.name, "seed": seed, "rounds": len(checked),
            "ops": report.ops, "faults": report.faults,
            "violations": Counter(v.kind for v in report.violations),
            "converge": [m["converge_s"] for m in checked],
            "differed": sum(m.get("differed_after_repair", 0) for m in checked),
            "compared": sum(compared), "bad_checksum": bad_checksum}


def _fmt(c: Counter[str]) -> str:
    return ", ".join(f"{k} {n:,}" for k, n in sorted(c.items(), key=lambda kv: -kv[1])) or "0"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.summary", description=__doc__)
    parser.add_argument("histories", nargs="+", type=Path)
    args = parser.parse_args(argv)
    runs = [summarize(p) for p in args.histories]
    total = {"ops": Counter(), "faults": Counter(), "violations": Counter(),
             "converge": [], "rounds": 0, "differed": 0, "compared": 0, "bad_checksum": 0}
    print("| seed | rounds | operations | faults | violations | identical after repair "
          "(median / max s) |")
    print("|---|---:|---|---|---|---|")
    for r in runs:
        for k in ("ops", "faults", "violations"):
            total[k].update(r[k])  # type: ignore[attr-defined]
        total["converge"] += r["converge"]  # type: ignore[operator]
        for k in ("rounds", "differed", "compared", "bad_checksum"):
            total[k] += r[k]  # type: ignore[operator]
        conv = r["converge"]
        print(f"| {r['seed']} | {r['rounds']} | {sum(r['ops'].values()):,} | "  # type: ignore[attr-defined]
              f"{sum(r['faults'].values())} | {sum(r['violations'].values())} | "  # type: ignore[attr-defined]
              f"{statistics.median(conv):.1f} / {max(conv):.1f} |"  # type: ignore[arg-type]
              if conv else f"| {r['seed']} | 0 | - | - | - | - |")
    conv = total["converge"]
    print()
    print(f"total: {total['rounds']} rounds; operations {sum(total['ops'].values()):,} "
          f"({_fmt(total['ops'])}); faults {sum(total['faults'].values())} "
          f"({_fmt(total['faults'])}); violations {sum(total['violations'].values())} "
          f"({_fmt(total['violations'])}); of them puts sent with a wrong checksum on "
          f"purpose: {total['bad_checksum']:,}; keys compared replica by replica after "
          f"repair: {total['compared']:,}, of which differed at the first look: "
          f"{total['differed']}; replicas identical after repair (the whole comparison "
          f"included): median {statistics.median(conv):.1f} s, max {max(conv):.1f} s"
          if conv else "no rounds")
    return 1 if sum(total["violations"].values()) else 0  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
