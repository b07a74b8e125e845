"""Real engines for in-process coordinator tests: one per node, each on its own
directory, with bucket ``app``; closed when the block ends."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from cairn.node.storage import Engine, EngineConfig


@contextlib.contextmanager
def node_engines(root: Path, nodes: tuple[int, ...] = (1, 2, 3)) -> Iterator[dict[int, Engine]]:
    opened: dict[int, Engine] = {}
    try:
        for n in nodes:
            (root / f"n{n}").mkdir()
            engine = Engine(EngineConfig(disks=(str(root / f"n{n}"),), min_free_bytes=0)).open()
            opened[n] = engine
            engine.create_bucket("app")
        yield opened
    finally:
        for engine in opened.values():
            engine.close()
