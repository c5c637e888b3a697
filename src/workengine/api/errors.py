"""The one place domain errors become gRPC status codes."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from workengine.api.decoding import Undecodable
from workengine.domain import errors
from workengine.domain.errors import ERROR_DOMAIN

log = logging.getLogger(__name__)


STATUS_OF: dict[type[errors.WorkEngineError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


Request = TypeVar("Request")
Response = TypeVar("Response")


def status_for(error: errors.WorkEngineError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return grpc.StatusCode.INTERNAL


def rich_status(error: errors.WorkEngineError) -> grpc.Status:
    """The status; an invalid field also travels as a google.rpc.BadRequest detail, and the
    field of a NOT_FOUND as the "field" of a google.rpc.ErrorInfo (reason NOT_FOUND), so
    clients that read rich error details (grpcurl prints them) need not parse the message."""
    code = status_for(error)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=error.message)
    detail = _detail(error)
    if detail is not None:
        status.details.add().Pack(detail)
    return rpc_status.to_status(status)


def _detail(error: errors.WorkEngineError) -> Message | None:
    """The google.rpc error detail `error` carries, if any."""
    detail: Message | None = None
    if isinstance(error, errors.InvalidArgument):
        violation = error_details_pb2.BadRequest.FieldViolation(field=error.field, description=error.problem)
        detail = error_details_pb2.BadRequest(field_violations=[violation])
    elif isinstance(error, errors.NotFound):
        detail = error_details_pb2.ErrorInfo(
            reason="NOT_FOUND", domain=ERROR_DOMAIN, metadata={"field": error.field}
        )
    elif isinstance(error, errors.FailedPrecondition) and error.reason:
        detail = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN)
    return detail


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: Exception) -> None:
    if isinstance(error, errors.WorkEngineError):
        status = rich_status(error)
        await context.abort(status.code, status.details, trailing_metadata=status.trailing_metadata)
    log.exception("unhandled error", exc_info=error)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")


async def abort(context: grpc.aio.ServicerContext[Any, Any], error: Exception) -> None:
    """Ends the call with the status `error` maps to (INTERNAL, logged, for anything unexpected)."""
    await _abort(context, error)


def require_decoded(request: Any) -> None:
    """INVALID_ARGUMENT for a request whose bytes did not parse (see api/decoding.py)."""
    if isinstance(request, Undecodable):
        raise errors.InvalidArgument(
            "request",
            f"is not a valid {request.message_name} message (malformed protobuf, or a string "
            "field that is not valid UTF-8)",
        )


def unary(
    method: Callable[[Any, Request, Any], Awaitable[Response]],
) -> Callable[[Any, Request, Any], Awaitable[Response]]:
    """Wraps a unary handler: domain errors become their status; anything else INTERNAL."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Request, context: Any) -> Response:
        try:
            require_decoded(request)
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
            require_decoded(request)
            async for item in method(self, request, context):
                yield item
        except Exception as error:
            await _abort(context, error)

    return wrapper
