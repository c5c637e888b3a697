"""The one place the HTTP side turns domain errors into statuses, and reads query parameters.

Every error is JSON: {"error": "<field>: <problem>", "field": "<field>"}, the field named for a
bad request value as the gRPC side names it in its BadRequest detail ("" when no one field is
to blame). Messages are the domain's: short, no SQL, no stack traces, no secrets.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from workengine.domain import errors
from workengine.domain.errors import InvalidArgument

log = logging.getLogger(__name__)

STATUS_OF: dict[type[errors.WorkEngineError], int] = {
    errors.InvalidArgument: 400,
    errors.OutOfRange: 400,
    errors.NotFound: 404,
    errors.AlreadyExists: 409,
    errors.PermissionDenied: 403,
    errors.FailedPrecondition: 409,
    errors.Aborted: 409,
    errors.Unavailable: 503,
    errors.Unauthenticated: 401,
    errors.ResourceExhausted: 429,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Answers change with every write: never from a cache.
NO_STORE = {"Cache-Control": "no-store"}


def json_error(status: int, message: str, field: str = "") -> web.Response:
    return web.json_response({"error": message, "field": field}, status=status, headers=NO_STORE)


def status_for(error: errors.WorkEngineError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 500


def from_domain(error: errors.WorkEngineError) -> web.Response:
    field = error.field if isinstance(error, errors.FieldError) else ""
    return json_error(status_for(error), error.message, field)


def api(handler: Handler) -> Handler:
    """Wraps a JSON handler: domain errors become their status; anything else a logged 500."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except errors.WorkEngineError as error:
            return from_domain(error)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("dashboard: unhandled error in %s %s", request.method, request.path)
            return json_error(500, "internal error")

    return wrapper


def query_int(request: web.Request, name: str, default: int = 0, *, minimum: int = 0) -> int:
    """The query parameter `name` as a whole number (absent or empty: `default`)."""
    raw = request.query.get(name, "").strip()
    if not raw:
        return default
    return parse_int(name, raw, minimum)


def parse_int(field: str, raw: str, minimum: int = 0) -> int:
    # isdigit() alone would take "²" and other digits int() refuses; 19 digits fit a bigint.
    if not (raw.isascii() and raw.lstrip("-").isdigit() and len(raw) <= 19):
        raise InvalidArgument(field, "must be a whole number")
    value = int(raw)
    if value < minimum:
        raise InvalidArgument(field, f"must be at least {minimum}")
    return value


def query_text(request: web.Request, name: str) -> str:
    return request.query.get(name, "")
