"""Sum py-spy ``-f raw`` profiles by function: the tables of RESULTS.md.

``py-spy record -f raw`` writes one line per distinct stack, ``frame;frame;...;leaf N``
(outermost first; with ``--threads`` the first frame names the thread). *Self* counts
the samples whose innermost frame is the function; *total* counts the samples with the
function anywhere on the stack (once per sample, however deep the recursion).

    python -m benchmarks._pyspy PROFILE.txt [--top 25] [--match cairn/]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

_LINE_NO = re.compile(r":\d+\)$")


@dataclass(frozen=True, slots=True)
class Profile:
    samples: int
    self_counts: Counter[str]
    total_counts: Counter[str]

    def top(self, which: str = "self", n: int = 20, match: str = "") -> list[tuple[str, float]]:
        counts = self.self_counts if which == "self" else self.total_counts
        rows = [(name, count) for name, count in counts.most_common() if match in name]
        return [(name, 100.0 * count / self.samples) for name, count in rows[:n]]


def _function(frame: str) -> str:
    """``handler (cairn/node/server/services.py:83)`` -> ``handler (cairn/node/server/
    services.py)``: lines of one function are summed together."""
    frame = _LINE_NO.sub(")", frame.strip())
    return re.sub(r"\(.*?/(site-packages|lib/python3\.\d+)/", "(", frame)


def load(path: str, *, skip_threads: bool = False) -> Profile:
    """Read a raw py-spy profile. ``skip_threads``: drop the first frame of each stack
    (the thread name that ``--threads`` adds)."""
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    samples = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_function(fr) for fr in stack.split(";") if fr]
            if skip_threads and frames:
                frames = frames[1:]
            if not frames:
                continue
            samples += count
            self_counts[frames[-1]] += count
            for name in set(frames):
                total_counts[name] += count
    return Profile(samples, self_counts, total_counts)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks._pyspy")
    p.add_argument("profile")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--match", default="", help="only functions whose name contains this")
    p.add_argument("--threads", action="store_true", help="the profile was taken with --threads")
    args = p.parse_args(argv)
    prof = load(args.profile, skip_threads=args.threads)
    print(f"{prof.samples} samples")
    for which in ("self", "total"):
        print(f"\n{which}:")
        for name, pct in prof.top(which, args.top, args.match):
            print(f"  {pct:5.1f}%  {name}")


if __name__ == "__main__":
    main()
