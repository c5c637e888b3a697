"""The one place domain errors become gRPC status codes."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from workengine.domain import errors

log = logging.getLogger(__name__)

STATUS_OF: dict[type[errors.WorkEngineError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}

Request = TypeVar("Request")
Response = TypeVar("Response")


def status_for(error: errors.WorkEngineError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return grpc.StatusCode.INTERNAL


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: Exception) -> None:
    if isinstance(error, errors.WorkEngineError):
        await context.abort(status_for(error), error.message)
    log.exception("unhandled error", exc_info=error)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")


def unary(
    method: Callable[[Any, Request, Any], Awaitable[Response]],
) -> Callable[[Any, Request, Any], Awaitable[Response]]:
    """Wraps a unary handler: domain errors become their status; anything else INTERNAL."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Request, context: Any) -> Response:
        try:
            return await method(self, request, context)
        except Exception as error:
            await _abort(context, error)
            raise  # unreachable: abort raises

    return wrapper


def streaming(
    method: Callable[[Any, Request, Any], AsyncIterator[Response]],
) -> Callable[[Any, Request, Any], AsyncIterator[Response]]:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Request, context: Any) -> AsyncIterator[Response]:
        try:
            async for item in method(self, request, context):
                yield item
        except Exception as error:
            await _abort(context, error)

    return wrapper
