"""The node side of the error table: cairn errors to gRPC status codes, in one place."""

from __future__ import annotations

import logging
from typing import Final, NoReturn

import grpc

from cairn.errors import (
    AlreadyExists,
    CairnError,
    Conflict,
    FailedPrecondition,
    IntegrityError,
    InternalError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Timeout,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger("cairn.server")

ERROR_CODE_KEY: Final = "cairn-error-code"

# Most specific first: the first class an error is an instance of decides its status.
STATUS_OF: Final[tuple[tuple[type[CairnError], grpc.StatusCode], ...]] = (
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (Conflict, grpc.StatusCode.ABORTED),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (Timeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (IntegrityError, grpc.StatusCode.DATA_LOSS),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (InternalError, grpc.StatusCode.INTERNAL),
)


def status_of(error: CairnError) -> grpc.StatusCode:
    for cls, status in STATUS_OF:
        if isinstance(error, cls):
            return status
    return grpc.StatusCode.INTERNAL


async def abort(context: grpc.aio.ServicerContext, error: CairnError) -> NoReturn:
    """End the call with ``error``'s status, message and cairn error code."""
    await context.abort(status_of(error), error.message or str(error),
                        trailing_metadata=((ERROR_CODE_KEY, error.code),))
    raise AssertionError("unreachable")  # pragma: no cover - abort always raises
