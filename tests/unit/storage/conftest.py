from __future__ import annotations

import pytest

from cairn.node.storage import Engine, EngineConfig


@pytest.fixture
def make_engine(tmp_path):
    """Open engines on tmp_path/disk-N; every engine opened is closed at teardown."""
    opened: list[Engine] = []

    def make(disks: int = 1, **overrides) -> Engine:
        paths = []
        for i in range(disks):
            p = tmp_path / f"disk-{i}"
            p.mkdir(exist_ok=True)
            paths.append(str(p))
        overrides.setdefault("min_free_bytes", 0)
        engine = Engine(EngineConfig(disks=tuple(paths), **overrides)).open()
        opened.append(engine)
        return engine

    yield make
    for engine in opened:
        engine.close()
