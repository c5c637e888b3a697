"""Who may call which RPC of WorkEngineService, and on what: the per-RPC rule table.

The domain says what an orchestrator token may touch (domain/access.py: its own orchestrator
and its own tasks); this module says which request field each RPC names it by. The guard
applies `authorize` before the servicer runs and records the caller in `CALLER` for the call.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Any

from workengine.calls import CALLER
from workengine.domain import access
from workengine.domain.access import ADMIN, Principal
from workengine.domain.errors import PermissionDenied


class Scope(enum.Enum):
    """What an RPC's request names, and so what the caller must own."""

    ADMIN = "admin"  # nothing an orchestrator owns: admin only
    ORCHESTRATOR = "orchestrator"  # request.orchestrator_id must be the caller's
    TASK = "task"  # request.task_id must be assigned to the caller
    TASK_LIST = "task_list"  # request.orchestrator_id: the caller's; empty lists the caller's own
    WATCH = "watch"  # one of task_id / orchestrator_id / workspace_id, see watch_scope
    ANY = "any"  # any authenticated caller (the engine refuses the request anyway)


# Per RPC of workengine.v1.WorkEngineService. An RPC not listed is admin only (fail closed).
RULES: dict[str, Scope] = {
    "SelectNextTask": Scope.ORCHESTRATOR,
    "ClaimNextTask": Scope.ORCHESTRATOR,
    # Its own queue; an id in task_ids of another orchestrator is only said to be another's.
    "ExplainSelection": Scope.ORCHESTRATOR,
    # The engine also refuses a task of another orchestrator (PERMISSION_DENIED).
    "PrepareTaskContext": Scope.ORCHESTRATOR,
    "ExecuteTask": Scope.ORCHESTRATOR,
    "UpdateTaskProgress": Scope.TASK,
    "CompleteTask": Scope.TASK,
    "Heartbeat": Scope.TASK,
    "RetryTask": Scope.TASK,
    "GetExecutionStats": Scope.ORCHESTRATOR,
    "WatchTaskProgress": Scope.WATCH,
    "RegisterOrchestrator": Scope.ADMIN,
    "GetOrchestrator": Scope.ORCHESTRATOR,
    "ListOrchestrators": Scope.ADMIN,
    "SetOrchestratorStatus": Scope.ORCHESTRATOR,
    "RotateOrchestratorToken": Scope.ORCHESTRATOR,
    "RevokeOrchestratorTokens": Scope.ADMIN,
    "CreateTask": Scope.ORCHESTRATOR,
    "GetTask": Scope.TASK,
    "ListTasks": Scope.TASK_LIST,
    "CancelTask": Scope.TASK,
}


def caller() -> Principal:
    return CALLER.get(ADMIN)


def scope_of(rpc: str) -> Scope:
    return RULES.get(rpc, Scope.ADMIN)


def watch_scope(task_id: str, orchestrator_id: str, workspace_id: str) -> Scope:
    """A task or orchestrator watch is the owner's; a workspace spans orchestrators: admin only.
    No target at all is left to the engine (INVALID_ARGUMENT)."""
    if task_id:
        return Scope.TASK
    if orchestrator_id:
        return Scope.ORCHESTRATOR
    if workspace_id:
        return Scope.ADMIN
    return Scope.ANY


def require_admin(principal: Principal, rpc: str) -> None:
    if not principal.is_admin:
        raise PermissionDenied(f"{rpc} needs the admin token; an orchestrator token cannot call it")


async def authorize(
    principal: Principal, rpc: str, request: Any, task_owner: Callable[[str], Awaitable[str | None]]
) -> None:
    """PERMISSION_DENIED unless `principal` may make this call; `task_owner` looks a task's
    orchestrator up (None: no such task, left to the use case's NOT_FOUND)."""
    if principal.is_admin:
        return
    scope = scope_of(rpc)
    if scope is Scope.WATCH:
        scope = watch_scope(request.task_id, request.orchestrator_id, request.workspace_id)
    if scope is Scope.ADMIN:
        require_admin(principal, rpc)
    elif scope in (Scope.ORCHESTRATOR, Scope.TASK_LIST):
        access.allow_orchestrator(principal, request.orchestrator_id)
    elif scope is Scope.TASK:
        access.allow_task(principal, await task_owner(request.task_id))


def listed_orchestrator(principal: Principal, requested: str) -> str:
    """The orchestrator a task listing is for: an orchestrator token lists its own tasks (the
    guard already refused another orchestrator's id); the admin lists what it asks for."""
    return requested if principal.is_admin else principal.orchestrator_id
