"""Before/after: one ``load_cell`` cell against the nodes of an older commit and of this
working tree, alternating, in one run (a shared machine's noise hits both alike).

    python -m benchmarks.ab --before 39124d1 --rounds 3 -- \\
        --system cluster --op put --size 4096 --concurrency 16 --duration 10

The older commit is checked out with ``git worktree`` into a temp directory and its
nodes run from there (``PYTHONPATH`` over a ``cairn/`` tree of symlinks, as
``tests/unit/test_layers.py`` builds it); the client side is this tree's in both. Prints
each run and the medians of ops/s and server CPU ms per operation, with after/before.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r": (?P<ops>[\d,.]+) ops/s, .*server CPU (?P<cpu>[\d,.]+) ms/op")


@contextlib.contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """A worktree of ``rev`` and, beside it, a ``cairn/`` tree of symlinks into it;
    yields the directory to put on PYTHONPATH. Both are removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="cairn-ab-"))
    work = base / "src"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(work), rev],
                   check=True, capture_output=True)
    try:
        pkg = base / "tree" / "cairn"
        pkg.mkdir(parents=True)
        for entry in (work / "client").iterdir():
            (pkg / entry.name).symlink_to(entry)
        (pkg / "node").symlink_to(work / "node")
        (pkg / "cluster").symlink_to(work / "cluster")
        yield base / "tree"
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work)],
                       check=False, capture_output=True)
        subprocess.run(["rm", "-rf", str(base)], check=False)


def one(cell: Sequence[str], node_command: str | None) -> tuple[float, float]:
    args = [sys.executable, "-m", "benchmarks.load_cell", *cell]
    if node_command:
        args += ["--node-command", node_command]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          check=False)
    match = LINE.search(proc.stdout)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"load_cell failed ({proc.returncode}): {proc.stdout[-2000:]}"
                           f"{proc.stderr[-2000:]}")
    return float(match["ops"].replace(",", "")), float(match["cpu"].replace(",", ""))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="the commit to compare against")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("cell", nargs=argparse.REMAINDER, help="-- then load_cell's arguments")
    args = p.parse_args(argv)
    cell = [a for a in args.cell if a != "--"]
    runs: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    with checkout(args.before) as tree:
        before_cmd = shlex.join(["env", f"PYTHONPATH={tree}", sys.executable, "-m",
                                 "cairn.node"])
        for i in range(args.rounds):
            order = ("before", "after") if i % 2 == 0 else ("after", "before")
            for side in order:
                ops, cpu = one(cell, before_cmd if side == "before" else None)
                runs[side].append((ops, cpu))
                print(f"round {i} {side:6}: {ops:8.0f} ops/s  {cpu:6.3f} ms CPU/op", flush=True)
    med = {side: (statistics.median(o for o, _ in r), statistics.median(c for _, c in r))
           for side, r in runs.items()}
    print(f"cell: {shlex.join(cell)}; before = {args.before}, after = this working tree")
    print(f"median before: {med['before'][0]:.0f} ops/s, {med['before'][1]:.3f} ms CPU/op")
    print(f"median after:  {med['after'][0]:.0f} ops/s, {med['after'][1]:.3f} ms CPU/op")
    print(f"after/before:  ops/s x{med['after'][0] / med['before'][0]:.2f}, CPU/op "
          f"x{med['after'][1] / med['before'][1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
