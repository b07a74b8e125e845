"""The public surface of ``cairn``: pinned, so a change to it is a deliberate one.

The pattern of encode/httpx ``tests/test_exported_members.py``.
"""

from __future__ import annotations
import __future__

import types

import pytest

import cairn

pytestmark = pytest.mark.unit

EXPORTED = [
    "AlreadyExists",
    "AsyncBucket",
    "AsyncClient",
    "Backoff",
    "Bucket",
    "BucketNotFound",
    "CairnError",
    "Client",
    "Codec",
    "CodecError",
    "CodecRegistry",
    "Conflict",
    "DataLoss",
    "DiskFull",
    "DiskReadOnly",
    "DiskStatus",
    "DiskUnavailable",
    "FailedPrecondition",
    "FunctionCodec",
    "GetResult",
    "IntegrityError",
    "InternalError",
    "InvalidArgument",
    "NodeStatus",
    "NotFound",
    "ObjectInfo",
    "PickleRefused",
    "Rebuilding",
    "RepairResult",
    "RepairStatus",
    "ResourceExhausted",
    "Retry",
    "Timeout",
    "Unauthenticated",
    "Unavailable",
    "Version",
    "__version__",
]


def test_all_is_pinned_and_sorted():
    assert cairn.__all__ == EXPORTED
    assert cairn.__all__ == sorted(cairn.__all__)


def test_every_public_member_is_exported():
    public = {
        name for name, value in vars(cairn).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType | __future__._Feature)
    }
    assert public == {n for n in EXPORTED if not n.startswith("_")}
    for name in cairn.__all__:
        assert hasattr(cairn, name), name


def test_codecs_module_is_reachable():
    assert cairn.codecs.CodecRegistry is cairn.CodecRegistry
    assert cairn.codecs.FunctionCodec is cairn.FunctionCodec
