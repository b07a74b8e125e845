"""cairn: a distributed, replicated object store. This package is its Python SDK.

Start at ``cairn.Client`` (sync) or ``cairn.AsyncClient``; errors are in
``cairn.errors`` and re-exported here. The node lives in ``cairn.node`` and the
cluster's pure placement code in ``cairn.cluster``.
"""

from __future__ import annotations

from cairn import codecs as codecs  # the module: `cairn.codecs.CodecRegistry` works
from cairn._async_client import AsyncClient
from cairn._client import Client
from cairn._core import (
    DiskStatus,
    GetResult,
    NodeStatus,
    ObjectInfo,
    RepairResult,
    RepairStatus,
)
from cairn._mapping import AsyncBucket, Bucket
from cairn._retry import Backoff, Retry
from cairn.codecs import Codec, CodecRegistry, FunctionCodec
from cairn.errors import (
    AlreadyExists,
    BucketNotFound,
    CairnError,
    CodecError,
    Conflict,
    DataLoss,
    DiskFull,
    DiskReadOnly,
    DiskUnavailable,
    FailedPrecondition,
    IntegrityError,
    InternalError,
    InvalidArgument,
    NotFound,
    PickleRefused,
    Rebuilding,
    ResourceExhausted,
    Timeout,
    Unauthenticated,
    Unavailable,
)
from cairn.types import Version

__version__ = "0.1.0"

__all__ = [
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
