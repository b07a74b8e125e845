"""The sync facade is generated from the async one: it must be current and alike."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import cairn

pytestmark = pytest.mark.unit


def test_generated_sync_client_is_current(project_root):
    proc = subprocess.run(
        [sys.executable, str(project_root / ".ci" / "unasync.py"), "--check"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if callable(member) and (not name.startswith("_") or name in ("__init__",))
    }


def test_both_clients_offer_the_same_calls():
    sync, aio = public_methods(cairn.Client), public_methods(cairn.AsyncClient)
    assert sync.keys() == aio.keys()
    for name in sync:
        assert str(sync[name]).replace("Async", "") == str(aio[name]).replace("Async", ""), name
        is_coroutine = inspect.iscoroutinefunction(getattr(cairn.AsyncClient, name))
        expect = name not in ("__init__", "bucket", "list")
        assert is_coroutine == expect, name
        assert not inspect.iscoroutinefunction(getattr(cairn.Client, name)), name
