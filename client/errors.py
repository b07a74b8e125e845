"""The one error tree of cairn, shared by the SDK, the node and the storage engine.

This module is a stdlib-only leaf: every layer may import it, it imports nothing of
cairn. Each error says whether repeating the call may succeed (``retryable``); the
gRPC mapping lives in exactly one table on each side (the SDK's transport and the
node's server), keyed by ``code`` below.

::

    CairnError
    ├── NotFound (also KeyError)          the object (or its version) does not exist
    │   └── BucketNotFound                the bucket does not exist
    ├── AlreadyExists                     e.g. a bucket that already exists
    ├── InvalidArgument (also ValueError) the request is malformed; never retried
    │   ├── CodecError                    unknown codec, value the codec cannot encode
    │   └── PickleRefused                 pickle without the client's explicit opt-in
    ├── Conflict                          a write lost to a newer version (carries it)
    ├── FailedPrecondition                e.g. deleting a bucket that is not empty
    ├── Unavailable                       not enough replicas / node down; retryable
    │   ├── Timeout                       the deadline passed; retryable
    │   ├── Rebuilding                    a replica refilling a lost disk; ask another
    │   └── DiskUnavailable               a disk is failed, full or read-only
    │       ├── DiskFull
    │       └── DiskReadOnly
    ├── IntegrityError                    bytes failed their checksum; never served
    │   └── DataLoss                      no healthy copy is left
    ├── ResourceExhausted                 too many streams, object too large
    ├── Unauthenticated
    └── InternalError                     a bug: please report it
"""

from __future__ import annotations

from typing import Any, ClassVar

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
    "Rebuilding",
    "ResourceExhausted",
    "Timeout",
    "Unauthenticated",
    "Unavailable",
    "error_for_code",
]


class CairnError(Exception):
    """Base of every error cairn raises on purpose.

    Attributes:
        message: one sentence a person understands.
        code: the stable name of the error kind, also used on the wire.
        retryable: whether repeating the same call may succeed.
    """

    code: ClassVar[str] = "UNKNOWN"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message or self.__class__.__name__


class NotFound(CairnError, KeyError):
    """The object does not exist (or only a tombstone does). Also a ``KeyError``."""

    code = "NOT_FOUND"

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message or "not found"


class BucketNotFound(NotFound):
    """The bucket does not exist; create it first."""

    code = "BUCKET_NOT_FOUND"


class AlreadyExists(CairnError):
    """The thing being created exists already."""

    code = "ALREADY_EXISTS"


class InvalidArgument(CairnError, ValueError):
    """The request is malformed (bad key, bucket name, range, size...). Never retried."""

    code = "INVALID_ARGUMENT"


class CodecError(InvalidArgument):
    """Unknown codec, or a value the chosen codec cannot encode or decode."""

    code = "CODEC_ERROR"


class PickleRefused(CodecError):
    """A pickle was asked for without the client's explicit opt-in (unpickling is unsafe)."""

    code = "PICKLE_REFUSED"


class Conflict(CairnError):
    """A write carried an older version than the one stored; the stored one wins.

    ``details["current"]`` holds the stored version when known, so a coordinator can move
    its clock past it and write again.
    """

    code = "CONFLICT"


class FailedPrecondition(CairnError):
    """The system is not in a state that allows the call (e.g. a non-empty bucket)."""

    code = "FAILED_PRECONDITION"


class Unavailable(CairnError):
    """Not enough replicas or disks answered. Retryable.

    ``details["outcomes"]``, when present, maps each replica to what it answered.
    """

    code = "UNAVAILABLE"
    retryable = True


class Timeout(Unavailable):
    """The call's deadline passed before it completed; it may or may not have happened."""

    code = "DEADLINE_EXCEEDED"


class DiskUnavailable(Unavailable):
    """A disk of a node is failed (I/O errors, gone, wrong identity) and cannot serve."""

    code = "DISK_UNAVAILABLE"


class Rebuilding(Unavailable):
    """A replica is being refilled from the others after losing a disk: its answer about
    this key would not be authoritative, so it gives none. Quorum reads ask another
    replica; a caller sees it only inside an Unavailable's outcomes."""

    code = "REBUILDING"


class DiskFull(DiskUnavailable):
    """The disk has no room for the write; reads go on, writes resume once space is freed."""

    code = "DISK_FULL"


class DiskReadOnly(DiskUnavailable):
    """The disk is mounted read-only; reads go on, writes fail."""

    code = "DISK_READ_ONLY"


class IntegrityError(CairnError):
    """Bytes failed their checksum. The bad bytes are never returned."""

    code = "INTEGRITY"


class DataLoss(IntegrityError):
    """No healthy copy of the object is left anywhere that was asked."""

    code = "DATA_LOSS"


class ResourceExhausted(CairnError):
    """A limit was hit: object too large, too many concurrent streams. Retry later or smaller."""

    code = "RESOURCE_EXHAUSTED"


class Unauthenticated(CairnError):
    """The caller's credentials were missing or wrong."""

    code = "UNAUTHENTICATED"


class InternalError(CairnError):
    """A bug in cairn. The message says what was seen; please report it."""

    code = "INTERNAL"


def _all_subclasses(cls: type[CairnError]) -> list[type[CairnError]]:
    found: list[type[CairnError]] = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_subclasses(sub))
    return found


_BY_CODE: dict[str, type[CairnError]] = {c.code: c for c in _all_subclasses(CairnError)}


def error_for_code(code: str, message: str, **details: Any) -> CairnError:
    """Build the error whose ``code`` is ``code`` (``InternalError`` for unknown codes)."""
    return _BY_CODE.get(code, InternalError)(message, **details)
