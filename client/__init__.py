"""cairn: a distributed, replicated object store. This package is its Python SDK.

Start at ``cairn.Client`` (sync) or ``cairn.AsyncClient``; errors are in
``cairn.errors`` and re-exported here. The node lives in ``cairn.node`` and the
cluster's pure placement code in ``cairn.cluster``.
"""

from __future__ import annotations

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
    ResourceExhausted,
    Timeout,
    Unauthenticated,
    Unavailable,
)
from cairn.types import Version

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "BucketNotFound",
    "CairnError",
    "CodecError",
    "Conflict",
    "DataLoss",
    "DiskFull",
    "DiskReadOnly",
    "DiskUnavailable",
    "FailedPrecondition",
    "IntegrityError",
    "InternalError",
    "InvalidArgument",
    "NotFound",
    "PickleRefused",
    "ResourceExhausted",
    "Timeout",
    "Unauthenticated",
    "Unavailable",
    "Version",
    "__version__",
]
