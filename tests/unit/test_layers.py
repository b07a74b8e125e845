"""STYLE checks that need the package laid out as ``cairn/``: mypy --strict and the import
layering (import-linter). The folder mapping (client/ is cairn, node/ is cairn.node...)
is invisible to both tools, so the test builds a tree of symlinks first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("layout")
    pkg = base / "cairn"
    pkg.mkdir()
    for entry in (ROOT / "client").iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    (pkg / "node").symlink_to(ROOT / "node")
    (pkg / "cluster").symlink_to(ROOT / "cluster")
    return base


def _run(args: list[str], tree: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(tree), MYPYPATH=str(tree))
    return subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True,
                          check=False, timeout=600)


def test_mypy_strict(tree):
    proc = _run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                 "--cache-dir", str(tree / ".mypy_cache"), "-p", "cairn"], tree)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_import_layers(tree):
    lint = Path(sys.executable).with_name("lint-imports")
    proc = _run([str(lint), "--config", str(ROOT / "pyproject.toml")], tree)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BROKEN" not in proc.stdout
