"""The call being served, as context variables: set by the api's interceptors in the call's own
task (grpc.aio runs each call in an asyncio task of its own, so a value never leaks to another
call), read by the api's rules and by the log formats, which must not depend on gRPC."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from workengine.domain.access import Principal


@dataclass(frozen=True)
class Call:
    method: str  # as gRPC names it: '/workengine.v1.WorkEngineService/GetTask'
    peer: str  # as gRPC names it: 'ipv4:127.0.0.1:51234', 'ipv6:[::1]:51234', 'unix:...'


# Set without a reset: each call runs in a task of its own, whose context ends with it.
CALL: ContextVar[Call | None] = ContextVar("workengine_call", default=None)

# The authenticated caller of the current call, set by the guard. Unset when authentication is
# off, where every caller is the admin.
CALLER: ContextVar[Principal] = ContextVar("workengine_caller")


def current_call() -> Call | None:
    return CALL.get()
