"""``python -m tests.chaos --rounds R --seed S [--round-seconds T] [--history FILE]``.

Runs the cluster chaos suite (docs/chaos.md) and exits 0 if every claim held, 1 with
the seed, the faults and the first violations if not (the history file is kept).
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
from pathlib import Path

from .runner import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=None, help="default: a random one")
    parser.add_argument("--round-seconds", type=float, default=60.0)
    parser.add_argument("--history", type=Path, default=None,
                        help="keep the history here (default: a temp file, kept on failure)")
    parser.add_argument("--keep-data", action="store_true",
                        help="keep the nodes' data directories (for debugging)")
    parser.add_argument("--kinds", default=None,
                        help="only these fault kinds, comma-separated (default: all)")
    parser.add_argument("--concurrent-faults", type=int, default=1,
                        help="faults in force at once, each on its own node (default 1)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"chaos seed {seed}: {args.rounds} rounds of {args.round_seconds:g} s", flush=True)

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(f"stopped by signal {signum}")  # runs the cleanup in run()

    signal.signal(signal.SIGTERM, terminate)
    only = args.kinds.split(",") if args.kinds else None
    result = run(args.rounds, seed, args.round_seconds, args.history, args.keep_data,
                 log=lambda line: print(line, flush=True), only=only,
                 nemeses=args.concurrent_faults)
    print(result.summary())
    if not result.ok:
        print(result.failure(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
