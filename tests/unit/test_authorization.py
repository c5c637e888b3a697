"""The per-RPC rules of the api layer: which request field names what the caller must own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from workengine.api import authorization
from workengine.api.authorization import Scope
from workengine.calls import CALLER
from workengine.domain.access import ADMIN, orchestrator_principal
from workengine.domain.errors import PermissionDenied
from workengine.v1 import work_engine_service_pb2 as pb

ADA = orchestrator_principal("ada")
OWNERS = {"ada-task": "ada", "bob-task": "bob"}


async def task_owner(task_id: str) -> str | None:
    return OWNERS.get(task_id)


async def authorize(principal: Any, rpc: str, request: Any) -> None:
    await authorization.authorize(principal, rpc, request, task_owner)


def test_every_rpc_has_a_rule_and_unknown_ones_are_admin_only() -> None:
    rpcs = {m.name for m in pb.DESCRIPTOR.services_by_name["WorkEngineService"].methods}
    rules = set(authorization.RULES)
    assert rpcs <= rules, f"RPCs without an explicit rule: {rpcs - rules}"
    assert authorization.scope_of("SomethingNew") is Scope.ADMIN
    assert authorization.scope_of("RegisterOrchestrator") is Scope.ADMIN
    assert authorization.scope_of("ListOrchestrators") is Scope.ADMIN
    assert authorization.scope_of("RevokeOrchestratorTokens") is Scope.ADMIN


async def test_the_admin_may_do_everything() -> None:
    authorization.require_admin(ADMIN, "RegisterOrchestrator")
    await authorize(ADMIN, "RegisterOrchestrator", pb.RegisterOrchestratorRequest())
    await authorize(ADMIN, "GetOrchestrator", pb.GetOrchestratorRequest(orchestrator_id="bob"))
    await authorize(ADMIN, "GetTask", pb.GetTaskRequest(task_id="bob-task"))
    await authorize(ADMIN, "ListTasks", pb.ListTasksRequest(orchestrator_id="bob"))
    assert authorization.listed_orchestrator(ADMIN, "") == ""
    assert authorization.listed_orchestrator(ADMIN, "bob") == "bob"


async def test_an_orchestrator_acts_on_itself_and_its_own_tasks_only() -> None:
    await authorize(ADA, "GetOrchestrator", pb.GetOrchestratorRequest(orchestrator_id="ada"))
    await authorize(ADA, "GetTask", pb.GetTaskRequest(task_id="ada-task"))
    await authorize(ADA, "GetTask", pb.GetTaskRequest(task_id="nope"))  # the engine: NOT_FOUND
    await authorize(ADA, "GetOrchestrator", pb.GetOrchestratorRequest())  # INVALID_ARGUMENT
    with pytest.raises(PermissionDenied, match="acts for orchestrator ada only"):
        await authorize(ADA, "GetOrchestrator", pb.GetOrchestratorRequest(orchestrator_id="bob"))
    with pytest.raises(PermissionDenied, match="assigned to another orchestrator"):
        await authorize(ADA, "GetTask", pb.GetTaskRequest(task_id="bob-task"))
    with pytest.raises(PermissionDenied, match="needs the admin token"):
        authorization.require_admin(ADA, "RegisterOrchestrator")
    with pytest.raises(PermissionDenied, match="RegisterOrchestrator needs the admin token"):
        await authorize(ADA, "RegisterOrchestrator", pb.RegisterOrchestratorRequest())


async def test_an_orchestrator_lists_its_own_tasks() -> None:
    for mine in ("", "ada"):
        request = pb.ListTasksRequest(orchestrator_id=mine)
        await authorize(ADA, "ListTasks", request)
        assert request.orchestrator_id == mine  # the request is left as it came
        assert authorization.listed_orchestrator(ADA, mine) == "ada"
    with pytest.raises(PermissionDenied, match="acts for orchestrator ada only"):
        await authorize(ADA, "ListTasks", pb.ListTasksRequest(orchestrator_id="bob"))


def test_watches_of_a_task_or_orchestrator_are_the_owners_and_workspaces_the_admins() -> None:
    assert authorization.watch_scope("t1", "", "") is Scope.TASK
    assert authorization.watch_scope("", "ada", "") is Scope.ORCHESTRATOR
    assert authorization.watch_scope("", "", "ws-1") is Scope.ADMIN
    assert authorization.watch_scope("", "", "") is Scope.ANY


async def test_the_caller_is_the_admin_unless_recorded_and_is_kept_per_call() -> None:
    assert authorization.caller() == ADMIN  # authentication off: nothing is recorded

    async def call(principal: Any) -> Any:
        CALLER.set(principal)
        await asyncio.sleep(0)
        return authorization.caller()

    assert list(await asyncio.gather(call(ADA), call(ADMIN))) == [ADA, ADMIN]
    assert authorization.caller() == ADMIN
