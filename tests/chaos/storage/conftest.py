"""Fixtures of the storage chaos tests: writer processes that are always reaped, and seeds."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .workload import Child


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[list[str]], Child]]:
    """Start writer processes; every one is SIGKILLed (if alive) and reaped at teardown,
    also when the test fails or times out."""
    children: list[Child] = []

    def start(argv: list[str]) -> Child:
        child = Child(argv, tmp_path / f"child-{len(children)}.stderr")
        children.append(child)
        return child

    try:
        yield start
    finally:
        for child in children:
            child.kill()


@pytest.fixture
def chaos_seed() -> int:
    """The run's seed: ``CAIRN_CHAOS_SEED`` replays one (the schedule of kills and the
    writers' choices; the exact kill instants depend on timing and cannot be replayed)."""
    seed = int(os.environ.get("CAIRN_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"chaos seed: {seed} (replay with CAIRN_CHAOS_SEED={seed})")
    return seed
