from __future__ import annotations

import pytest

from tests.support.node import NodeProcess


@pytest.fixture
def node(tmp_path):
    """A real node process on 127.0.0.1 (ephemeral port), killed at teardown."""
    with NodeProcess(tmp_path / "node-data") as proc:
        yield proc
