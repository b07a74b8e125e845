"""The project's shape: folder mapping, exported names, lint."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib

import pytest

import cairn

pytestmark = pytest.mark.unit

MAPPING = {"client": "cairn", "node": "cairn.node", "cluster": "cairn.cluster"}


def test_every_package_folder_is_listed(project_root):
    conf = tomllib.loads((project_root / "pyproject.toml").read_text())
    listed = set(conf["tool"]["setuptools"]["packages"])
    found = set()
    for folder, name in MAPPING.items():
        for init in (project_root / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(project_root / folder)
            found.add(".".join([name, *rel.parts]))
    assert found == listed


def test_errors_are_exported_and_typed():
    assert issubclass(cairn.NotFound, KeyError)
    assert issubclass(cairn.BucketNotFound, cairn.NotFound)
    assert issubclass(cairn.InvalidArgument, ValueError)
    assert cairn.Unavailable.retryable
    assert cairn.Timeout.retryable
    assert not cairn.InvalidArgument.retryable
    assert not cairn.IntegrityError.retryable
    for name in cairn.__all__:
        assert hasattr(cairn, name), name


def test_error_for_code_round_trips():
    from cairn.errors import CairnError, error_for_code

    def walk(cls):
        yield cls
        for sub in cls.__subclasses__():
            yield from walk(sub)

    for cls in walk(CairnError):
        err = error_for_code(cls.code, "m")
        assert type(err) is cls
        assert str(err) == "m"
    assert type(error_for_code("NO_SUCH_CODE", "m")).__name__ == "InternalError"


@pytest.mark.skipif(shutil.which("ruff") is None and sys.prefix == sys.base_prefix,
                    reason="ruff not installed")
def test_ruff_passes(project_root):
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."],
        cwd=project_root, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
