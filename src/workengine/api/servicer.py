"""WorkEngineService: each method converts the request, calls the engine, converts the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

from workengine import tracing
from workengine.api import authorization, convert
from workengine.api.context import context_out
from workengine.api.errors import streaming, unary
from workengine.api.watch_responses import EventResponses
from workengine.domain.model import Bookmark
from workengine.engine import WorkEngine
from workengine.engine.events import WatchTarget
from workengine.engine.execution import StartOptions
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

Context = Any  # grpc.aio.ServicerContext


def start_options(request: pb.ClaimNextTaskRequest | pb.ExecuteTaskRequest, context: Context) -> StartOptions:
    """The lease, identity and history a start asks for; the identity defaults to the caller's
    address."""
    return StartOptions(
        lease=convert.duration_in("lease_duration", request),
        identity=request.identity or str(context.peer() or ""),
        history_limit=history_limit_in(request),
    )


def history_limit_in(
    request: pb.ClaimNextTaskRequest | pb.ExecuteTaskRequest | pb.PrepareTaskContextRequest,
) -> int | None:
    return request.history_limit if request.HasField("history_limit") else None


class WorkEngineServicer(pb_grpc.WorkEngineServiceServicer):
    def __init__(self, engine: WorkEngine) -> None:
        self._engine = engine
        self._responses = EventResponses()

    @unary
    async def SelectNextTask(
        self, request: pb.SelectNextTaskRequest, context: Context
    ) -> pb.SelectNextTaskResponse:
        scored = await self._engine.execution.select_next(
            request.orchestrator_id, convert.criteria_in(request.criteria)
        )
        if scored is None:
            return pb.SelectNextTaskResponse()
        return pb.SelectNextTaskResponse(task=convert.task_out(scored.task), score=scored.score)

    @unary
    async def ExplainSelection(
        self, request: pb.ExplainSelectionRequest, context: Context
    ) -> pb.ExplainSelectionResponse:
        explanation = await self._engine.execution.explain(
            request.orchestrator_id, convert.criteria_in(request.criteria), request.limit, request.task_ids
        )
        return convert.explanation_out(explanation)

    @unary
    async def ClaimNextTask(
        self, request: pb.ClaimNextTaskRequest, context: Context
    ) -> pb.ClaimNextTaskResponse:
        wait = convert.duration_in("wait", request)
        remaining = context.time_remaining()
        if wait is not None and remaining is not None:
            # Answer "no task" before the client's deadline rather than let the call expire.
            wait = min(wait, timedelta(seconds=max(0.0, remaining - 0.5)))
        claimed = await self._engine.execution.claim_next(
            request.orchestrator_id,
            convert.criteria_in(request.criteria),
            wait,
            start_options(request, context),
        )
        if claimed is None:
            return pb.ClaimNextTaskResponse()
        tracing.task_started(claimed.context.task)
        return pb.ClaimNextTaskResponse(
            context=context_out(claimed.context),
            attempt=claimed.context.task.attempt,
            score=claimed.score,
        )

    @unary
    async def PrepareTaskContext(
        self, request: pb.PrepareTaskContextRequest, context: Context
    ) -> pb.PrepareTaskContextResponse:
        prepared = await self._engine.execution.prepare_context(
            request.orchestrator_id, request.task_id, history_limit_in(request)
        )
        return pb.PrepareTaskContextResponse(context=context_out(prepared))

    @unary
    async def ExecuteTask(self, request: pb.ExecuteTaskRequest, context: Context) -> pb.ExecuteTaskResponse:
        execution = await self._engine.execution.execute(
            request.orchestrator_id, request.task_id, start_options(request, context)
        )
        if execution.started:
            tracing.task_started(execution.context.task)
        return pb.ExecuteTaskResponse(
            outcome=pb.EXECUTE_OUTCOME_STARTED if execution.started else pb.EXECUTE_OUTCOME_BLOCKED,
            context=context_out(execution.context),
            attempt=execution.attempt,
            blocked_reason=execution.blocked_reason,
            unmet_dependency_ids=execution.unmet_dependency_ids,
        )

    @unary
    async def UpdateTaskProgress(
        self, request: pb.UpdateTaskProgressRequest, context: Context
    ) -> pb.UpdateTaskProgressResponse:
        task = await self._engine.execution.update_progress(
            request.task_id,
            request.attempt,
            request.progress,
            request.message,
            convert.struct_in("metadata", request.metadata),
        )
        return pb.UpdateTaskProgressResponse(task=convert.task_out(task))

    @unary
    async def CompleteTask(
        self, request: pb.CompleteTaskRequest, context: Context
    ) -> pb.CompleteTaskResponse:
        task, unblocked = await self._engine.execution.complete(
            request.task_id,
            request.attempt,
            convert.COMPLETION_STATUS.to_domain("status", request.status),
            convert.result_in("result", request.result),
            convert.duration_in("retry_after", request),
        )
        return pb.CompleteTaskResponse(task=convert.task_out(task), unblocked_task_ids=unblocked)

    @unary
    async def Heartbeat(self, request: pb.HeartbeatRequest, context: Context) -> pb.HeartbeatResponse:
        task = await self._engine.execution.heartbeat(
            request.task_id, request.attempt, convert.duration_in("lease_duration", request)
        )
        response = pb.HeartbeatResponse()
        convert.time_out(response.lease_expire_time, task.lease_expires_at)
        return response

    @unary
    async def RetryTask(self, request: pb.RetryTaskRequest, context: Context) -> pb.RetryTaskResponse:
        task = await self._engine.tasks.retry(request.task_id, request.max_attempts)
        return pb.RetryTaskResponse(task=convert.task_out(task))

    @unary
    async def GetExecutionStats(
        self, request: pb.GetExecutionStatsRequest, context: Context
    ) -> pb.GetExecutionStatsResponse:
        stats = await self._engine.stats.execution_stats(
            request.orchestrator_id,
            convert.time_in("start_time", request, request.start_time),
            convert.time_in("end_time", request, request.end_time),
        )
        return convert.stats_out(stats)

    @streaming
    async def WatchTaskProgress(
        self, request: pb.WatchTaskProgressRequest, context: Context
    ) -> AsyncIterator[pb.WatchTaskProgressResponse]:
        kinds = frozenset(
            kind
            for index, value in enumerate(request.kinds)
            if (kind := convert.EVENT_KIND.to_domain(f"kinds[{index}]", value)) is not None
        )
        target = WatchTarget(
            task_id=request.task_id,
            orchestrator_id=request.orchestrator_id,
            workspace_id=request.workspace_id,
            kinds=kinds,
        )
        bookmarks = convert.duration_in("bookmark_interval", request)
        events = self._engine.watcher.watch(target, request.after_cursor, request.keep_open, bookmarks)
        async for event in events:
            if isinstance(event, Bookmark):
                yield pb.WatchTaskProgressResponse(event=convert.bookmark_out(event))
            else:
                yield self._responses.get(event)

    @unary
    async def RegisterOrchestrator(
        self, request: pb.RegisterOrchestratorRequest, context: Context
    ) -> pb.RegisterOrchestratorResponse:
        orchestrator, issued = await self._engine.access.register(
            convert.new_orchestrator_in(request), convert.duration_in("token_ttl", request)
        )
        response = pb.RegisterOrchestratorResponse(
            orchestrator=convert.orchestrator_out(orchestrator), token=issued.token
        )
        convert.time_out(response.token_expire_time, issued.expires_at)
        return response

    @unary
    async def RotateOrchestratorToken(
        self, request: pb.RotateOrchestratorTokenRequest, context: Context
    ) -> pb.RotateOrchestratorTokenResponse:
        issued = await self._engine.access.rotate(
            request.orchestrator_id,
            convert.duration_in("token_ttl", request),
            convert.duration_in("previous_token_grace", request),
        )
        response = pb.RotateOrchestratorTokenResponse(token=issued.token)
        convert.time_out(response.token_expire_time, issued.expires_at)
        return response

    @unary
    async def RevokeOrchestratorTokens(
        self, request: pb.RevokeOrchestratorTokensRequest, context: Context
    ) -> pb.RevokeOrchestratorTokensResponse:
        revoked = await self._engine.access.revoke(request.orchestrator_id)
        return pb.RevokeOrchestratorTokensResponse(revoked_count=revoked)

    @unary
    async def GetOrchestrator(
        self, request: pb.GetOrchestratorRequest, context: Context
    ) -> pb.GetOrchestratorResponse:
        orchestrator = await self._engine.orchestrators.get(request.orchestrator_id)
        return pb.GetOrchestratorResponse(orchestrator=convert.orchestrator_out(orchestrator))

    @unary
    async def ListOrchestrators(
        self, request: pb.ListOrchestratorsRequest, context: Context
    ) -> pb.ListOrchestratorsResponse:
        page = await self._engine.orchestrators.list_page(
            convert.ORCHESTRATOR_STATUS.to_domain("status", request.status),
            request.page_size,
            request.page_token,
        )
        return pb.ListOrchestratorsResponse(
            orchestrators=[convert.orchestrator_out(o) for o in page.items],
            next_page_token=page.next_page_token,
        )

    @unary
    async def SetOrchestratorStatus(
        self, request: pb.SetOrchestratorStatusRequest, context: Context
    ) -> pb.SetOrchestratorStatusResponse:
        status = convert.ORCHESTRATOR_STATUS.to_domain("status", request.status)
        orchestrator = await self._engine.orchestrators.set_status(request.orchestrator_id, status)
        return pb.SetOrchestratorStatusResponse(orchestrator=convert.orchestrator_out(orchestrator))

    @unary
    async def CreateTask(self, request: pb.CreateTaskRequest, context: Context) -> pb.CreateTaskResponse:
        trace_context = convert.trace_context_in(context.invocation_metadata())
        task = await self._engine.tasks.create(convert.new_task_in(request), trace_context)
        return pb.CreateTaskResponse(task=convert.task_out(task))

    @unary
    async def GetTask(self, request: pb.GetTaskRequest, context: Context) -> pb.GetTaskResponse:
        task, attempts = await self._engine.tasks.get_with_attempts(request.task_id)
        return pb.GetTaskResponse(
            task=convert.task_out(task), attempts=[convert.attempt_out(a) for a in attempts]
        )

    @unary
    async def ListTasks(self, request: pb.ListTasksRequest, context: Context) -> pb.ListTasksResponse:
        where = convert.task_filter_in(request)
        listed = authorization.listed_orchestrator(authorization.caller(), where.orchestrator_id)
        page = await self._engine.tasks.list_page(
            replace(where, orchestrator_id=listed), request.page_size, request.page_token
        )
        return pb.ListTasksResponse(
            tasks=[convert.task_out(t) for t in page.items], next_page_token=page.next_page_token
        )

    @unary
    async def CancelTask(self, request: pb.CancelTaskRequest, context: Context) -> pb.CancelTaskResponse:
        task, unblocked = await self._engine.tasks.cancel(request.task_id, request.reason)
        return pb.CancelTaskResponse(task=convert.task_out(task), unblocked_task_ids=unblocked)
