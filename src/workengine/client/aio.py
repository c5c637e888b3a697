"""The asyncio client. Hand-written; sync.py is generated from it by scripts/generate_protos.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import grpc

if TYPE_CHECKING:
    from typing_extensions import Unpack

from workengine.client import requests
from workengine.client.base import CHANNEL_OPTIONS, ClientBase
from workengine.client.errors import from_rpc_error
from workengine.client.requests import JsonObject
from workengine.v1 import orchestrator_pb2, task_pb2
from workengine.v1 import work_engine_service_pb2 as pb


class AsyncWorkEngineClient(ClientBase):
    """An asyncio WorkEngine client over grpc.aio; create it inside the running event loop.

    >>> async with AsyncWorkEngineClient("localhost:50051") as client:
    ...     claimed = await client.claim_next_task("ada", wait=timedelta(seconds=20))

    `target` is "host:port". Every call gets a deadline (`timeout` seconds per attempt,
    default 10; a call's own `timeout=` overrides it; ClaimNextTask adds its `wait`). Calls
    that are safe to repeat are retried on UNAVAILABLE with jittered exponential backoff
    (`workengine.client.retry` lists them and says why). Errors are typed, a class per status
    code (`workengine.client.errors`: `ReportRefused`, `NotFound`, ...), each a `grpc.RpcError`.
    `token` is sent as `authorization: Bearer <token>` on every call (the admin's or an
    orchestrator's token, for a server with authentication on). `metadata` is called before
    each attempt with the RPC's name and returns more metadata to send; `credentials`
    switches to TLS, e.g. `grpc.ssl_channel_credentials(ca_pem)`; `channel` replaces the one
    the client opens. `stub` is the generated stub, for anything these methods do not cover
    (its calls get none of the above).
    """

    channel: grpc.aio.Channel

    def _open_channel(self, target: str, credentials: grpc.ChannelCredentials | None) -> grpc.aio.Channel:
        if credentials is None:
            return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        return grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncWorkEngineClient:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.close()

    async def _unary(
        self,
        method: str,
        request: Any,
        timeout: float | None = None,
        wait: timedelta | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        call = getattr(self.stub, method)
        attempts = 0
        while True:
            attempts += 1
            try:
                return await call(
                    request,
                    timeout=self.deadline(timeout, wait),
                    metadata=self.call_metadata(method),
                )
            except grpc.RpcError as error:
                delay = self.retry.delay_before_retry(method, error.code(), attempts, idempotent=idempotent)
                if delay is None:
                    raise from_rpc_error(error, method) from error
                await asyncio.sleep(delay)

    async def call(
        self, method: str, request: Any, *, timeout: float | None = None, idempotent: bool | None = None
    ) -> Any:
        """Any unary RPC by name (e.g. "ListTasks") with a request you build, for what the methods
        below trim (RegisterOrchestrator's token, a List's page token) or do not cover: same
        deadline, metadata and typed errors; retried if in IDEMPOTENT_METHODS (or `idempotent`)."""
        return await self._unary(method, request, timeout, idempotent=idempotent)

    async def _pages(
        self, method: str, request: Any, items: str, timeout: float | None
    ) -> AsyncIterator[Any]:
        """Every item of a List call, page after page (each page retried on its own)."""
        while True:
            page = await self._unary(method, request, timeout)
            for item in getattr(page, items):
                yield item
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    # -- orchestrators ------------------------------------------------------------------------

    async def register_orchestrator(
        self,
        display_name: str,
        *,
        orchestrator_id: str = "",
        timezone: str = "",
        capabilities: Iterable[str] = (),
        role: str = "",
        discipline: str = "",
        charter: orchestrator_pb2.Charter | None = None,
        daemon_endpoint: str = "",
        status: orchestrator_pb2.OrchestratorStatus = orchestrator_pb2.ORCHESTRATOR_STATUS_UNSPECIFIED,
        timeout: float | None = None,
    ) -> orchestrator_pb2.Orchestrator:
        """Registers an orchestrator (AlreadyExists if the id is taken); ONLINE unless `status`
        says otherwise. Not retried."""
        request = requests.register_orchestrator(
            display_name, orchestrator_id, timezone, capabilities, role, discipline, charter
        )
        request.daemon_endpoint = daemon_endpoint
        request.status = status
        response = await self._unary("RegisterOrchestrator", request, timeout)
        return cast(pb.RegisterOrchestratorResponse, response).orchestrator

    async def get_orchestrator(
        self, orchestrator_id: str, *, timeout: float | None = None
    ) -> orchestrator_pb2.Orchestrator:
        """One orchestrator (NotFound if unknown). Retried."""
        request = pb.GetOrchestratorRequest(orchestrator_id=orchestrator_id)
        response = await self._unary("GetOrchestrator", request, timeout)
        return cast(pb.GetOrchestratorResponse, response).orchestrator

    async def set_orchestrator_status(
        self,
        orchestrator_id: str,
        status: orchestrator_pb2.OrchestratorStatus,
        *,
        timeout: float | None = None,
    ) -> orchestrator_pb2.Orchestrator:
        """Changes availability (also a heartbeat). Retried: the same status twice is harmless."""
        request = pb.SetOrchestratorStatusRequest(orchestrator_id=orchestrator_id, status=status)
        response = await self._unary("SetOrchestratorStatus", request, timeout)
        return cast(pb.SetOrchestratorStatusResponse, response).orchestrator

    async def rotate_orchestrator_token(
        self,
        orchestrator_id: str,
        *,
        token_ttl: timedelta | None = None,
        previous_token_grace: timedelta | None = None,
        timeout: float | None = None,
    ) -> pb.RotateOrchestratorTokenResponse:
        """Issues a new token (`response.token`, shown once); the previous ones stop working now or
        after `previous_token_grace`. Not retried: a lost answer would leave an unknown token."""
        request = requests.rotate_orchestrator_token(orchestrator_id, token_ttl, previous_token_grace)
        response = await self._unary("RotateOrchestratorToken", request, timeout)
        return cast(pb.RotateOrchestratorTokenResponse, response)

    async def revoke_orchestrator_tokens(self, orchestrator_id: str, *, timeout: float | None = None) -> int:
        """Revokes every token of the orchestrator now (admin only); returns how many worked. Retried."""
        request = pb.RevokeOrchestratorTokensRequest(orchestrator_id=orchestrator_id)
        response = await self._unary("RevokeOrchestratorTokens", request, timeout)
        return cast(pb.RevokeOrchestratorTokensResponse, response).revoked_count

    def list_orchestrators(
        self,
        *,
        status: orchestrator_pb2.OrchestratorStatus = orchestrator_pb2.ORCHESTRATOR_STATUS_UNSPECIFIED,
        page_size: int = 100,
        timeout: float | None = None,
    ) -> AsyncIterator[orchestrator_pb2.Orchestrator]:
        """Every orchestrator (in `status`, if given), oldest first, a page at a time. Retried per page."""
        request = pb.ListOrchestratorsRequest(status=status, page_size=page_size)
        return self._pages("ListOrchestrators", request, "orchestrators", timeout)

    # -- tasks --------------------------------------------------------------------------------

    async def create_task(
        self,
        orchestrator_id: str,
        workspace_id: str,
        title: str,
        *,
        timeout: float | None = None,
        **fields: Unpack[requests.TaskFields],
    ) -> task_pb2.Task:
        """Creates a task, TODO or BLOCKED (on unmet dependencies, or until its not_before).
        Retried only with an idempotency_key (a repeat returns the task the first call created).
        Optional fields: task_id, description, priority, due_time (datetime), tags, depends_on,
        metadata (a JSON object), channel_id, max_attempts, lease_duration (timedelta),
        idempotency_key, not_before (datetime: a scheduled start)."""
        request = requests.create_task(orchestrator_id, workspace_id, title, fields)
        response = await self._unary("CreateTask", request, timeout, idempotent=bool(request.idempotency_key))
        return cast(pb.CreateTaskResponse, response).task

    async def get_task(self, task_id: str, *, timeout: float | None = None) -> task_pb2.Task:
        """One task (NotFound if unknown). Retried."""
        response = await self._unary("GetTask", pb.GetTaskRequest(task_id=task_id), timeout)
        return cast(pb.GetTaskResponse, response).task

    def list_tasks(
        self,
        *,
        orchestrator_id: str = "",
        workspace_id: str = "",
        statuses: Iterable[task_pb2.TaskStatus] = (),
        tag: str = "",
        page_size: int = 100,
        timeout: float | None = None,
    ) -> AsyncIterator[task_pb2.Task]:
        """Every task matching the filters, oldest first, fetched a page at a time. Retried per page."""
        request = requests.list_tasks(orchestrator_id, workspace_id, statuses, tag, page_size)
        return self._pages("ListTasks", request, "tasks", timeout)

    async def cancel_task(
        self, task_id: str, reason: str = "", *, timeout: float | None = None
    ) -> task_pb2.Task:
        """Cancels an unfinished task (FailedPrecondition once finished). Not retried."""
        request = pb.CancelTaskRequest(task_id=task_id, reason=reason)
        return cast(pb.CancelTaskResponse, await self._unary("CancelTask", request, timeout)).task

    # -- the daemon loop ----------------------------------------------------------------------

    async def select_next_task(
        self,
        orchestrator_id: str,
        *,
        criteria: task_pb2.SelectionCriteria | None = None,
        timeout: float | None = None,
    ) -> pb.SelectNextTaskResponse:
        """The best ready task (unset `task` when none); changes nothing. Retried."""
        request = pb.SelectNextTaskRequest(orchestrator_id=orchestrator_id, criteria=criteria)
        return cast(pb.SelectNextTaskResponse, await self._unary("SelectNextTask", request, timeout))

    async def explain_selection(
        self,
        orchestrator_id: str,
        *,
        criteria: task_pb2.SelectionCriteria | None = None,
        limit: int = 0,
        task_ids: Iterable[str] = (),
        timeout: float | None = None,
    ) -> pb.ExplainSelectionResponse:
        """The ready tasks ranked as claims would take them (`ranked`: up to `limit`, 0 for 20, with
        their score parts) and why each of `task_ids` is not first (`explained`). Retried."""
        request = requests.explain_selection(orchestrator_id, criteria, limit, task_ids)
        return cast(pb.ExplainSelectionResponse, await self._unary("ExplainSelection", request, timeout))

    async def claim_next_task(
        self,
        orchestrator_id: str,
        *,
        wait: timedelta | None = None,
        criteria: task_pb2.SelectionCriteria | None = None,
        lease_duration: timedelta | None = None,
        identity: str = "",
        history_limit: int | None = None,
        timeout: float | None = None,
    ) -> pb.ClaimNextTaskResponse:
        """Starts the best ready task and returns its context and attempt; `HasField("context")` is
        False when nothing was ready within `wait` (at most 60 s). The attempt holds a lease
        (`lease_duration`, else the task's, else the server's default): keep it with heartbeat()
        or progress reports. The context's `history` holds up to `history_limit` past executions
        (0-50; None: the server's 5; 0 leaves out the history and the `estimate`). Not retried: a
        claim whose answer was lost has started a task; it comes back to TODO only through its
        lease."""
        request = requests.claim_next_task(
            orchestrator_id, wait, criteria, lease_duration, identity, history_limit
        )
        return cast(pb.ClaimNextTaskResponse, await self._unary("ClaimNextTask", request, timeout, wait))

    async def execute_task(
        self,
        orchestrator_id: str,
        task_id: str,
        *,
        lease_duration: timedelta | None = None,
        identity: str = "",
        history_limit: int | None = None,
        timeout: float | None = None,
    ) -> pb.ExecuteTaskResponse:
        """Starts one task (outcome STARTED or BLOCKED; Aborted if someone started it), under a
        lease and with a history of `history_limit` entries as claim_next_task. Not retried."""
        request = requests.execute_task(orchestrator_id, task_id, lease_duration, identity, history_limit)
        return cast(pb.ExecuteTaskResponse, await self._unary("ExecuteTask", request, timeout))

    async def prepare_task_context(
        self,
        orchestrator_id: str,
        task_id: str,
        *,
        history_limit: int | None = None,
        timeout: float | None = None,
    ) -> task_pb2.TaskContext:
        """The task with its orchestrator, charter, dependencies, related tasks, and its history
        and estimate (`history_limit` as claim_next_task). Retried."""
        request = requests.prepare_task_context(orchestrator_id, task_id, history_limit)
        response = await self._unary("PrepareTaskContext", request, timeout)
        return cast(pb.PrepareTaskContextResponse, response).context

    async def update_task_progress(
        self,
        task_id: str,
        attempt: int,
        progress: int,
        message: str = "",
        *,
        metadata: JsonObject | None = None,
        timeout: float | None = None,
    ) -> task_pb2.Task:
        """Reports 0-100 percent for the running attempt. ReportRefused (its `.reason`:
        TASK_CANCELLED, LEASE_EXPIRED, ATTEMPT_SUPERSEDED, ...) means stop working. Retried."""
        request = requests.update_task_progress(task_id, attempt, progress, message, metadata)
        response = await self._unary("UpdateTaskProgress", request, timeout)
        return cast(pb.UpdateTaskProgressResponse, response).task

    async def complete_task(
        self,
        task_id: str,
        attempt: int,
        status: pb.CompletionStatus = pb.COMPLETION_STATUS_COMPLETED,
        *,
        output: JsonObject | None = None,
        error: str = "",
        metrics: JsonObject | None = None,
        artifacts: Iterable[task_pb2.Artifact] = (),
        retry_after: timedelta | None = None,
        lessons: Sequence[str] = (),
        timeout: float | None = None,
    ) -> pb.CompleteTaskResponse:
        """Records the outcome of the attempt; with status BLOCKED, `retry_after` brings the task
        back to TODO by itself. `lessons` (at most 10 short notes) come back in the history of
        later attempts at this and similar tasks. ReportRefused when the attempt is no longer
        current (its `.reason` says why). Retried: an identical repeat is answered unchanged."""
        request = requests.complete_task(
            task_id, attempt, status, output, error, metrics, artifacts, retry_after, lessons
        )
        return cast(pb.CompleteTaskResponse, await self._unary("CompleteTask", request, timeout))

    async def heartbeat(
        self,
        task_id: str,
        attempt: int,
        *,
        lease_duration: timedelta | None = None,
        timeout: float | None = None,
    ) -> datetime:
        """Extends the attempt's lease; returns when it now ends. ReportRefused means stop
        working: the task was cancelled or finished, or the attempt lost its lease (its
        `.reason`, a Refusal, says which). Retried."""
        request = pb.HeartbeatRequest(task_id=task_id, attempt=attempt, lease_duration=lease_duration)
        response = cast(pb.HeartbeatResponse, await self._unary("Heartbeat", request, timeout))
        return response.lease_expire_time.ToDatetime(tzinfo=UTC)

    async def retry_task(
        self, task_id: str, *, max_attempts: int = 0, timeout: float | None = None
    ) -> task_pb2.Task:
        """Puts a FAILED task back to TODO (raising its max_attempts to `max_attempts` if
        given). Not retried."""
        request = pb.RetryTaskRequest(task_id=task_id, max_attempts=max_attempts)
        return cast(pb.RetryTaskResponse, await self._unary("RetryTask", request, timeout)).task

    async def get_task_attempts(
        self, task_id: str, *, timeout: float | None = None
    ) -> list[task_pb2.TaskAttempt]:
        """Every attempt of the task, first to last: who ran it, when, how it ended. Retried."""
        response = await self._unary("GetTask", pb.GetTaskRequest(task_id=task_id), timeout)
        return list(cast(pb.GetTaskResponse, response).attempts)

    async def get_execution_stats(
        self,
        orchestrator_id: str,
        *,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        timeout: float | None = None,
    ) -> pb.GetExecutionStatsResponse:
        """Counts, success rate and completion-time percentiles. Retried."""
        request = requests.execution_stats(orchestrator_id, start_time, end_time)
        return cast(pb.GetExecutionStatsResponse, await self._unary("GetExecutionStats", request, timeout))

    async def watch_task_progress(
        self,
        *,
        task_id: str = "",
        orchestrator_id: str = "",
        workspace_id: str = "",
        after_cursor: int = 0,
        kinds: Iterable[task_pb2.TaskEventKind] = (),
        keep_open: bool = False,
        bookmark_interval: timedelta | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[task_pb2.TaskEvent]:
        """Events of one task, orchestrator or workspace: a snapshot, then live events. No deadline
        unless `timeout` is given, and not retried: on UNAVAILABLE, watch again with
        `after_cursor` set to the last event's cursor. With `bookmark_interval`, an idle stream
        sends BOOKMARK events whose cursor keeps that resume point fresh."""
        request = requests.watch_task_progress(
            task_id, orchestrator_id, workspace_id, after_cursor, kinds, keep_open, bookmark_interval
        )
        stream = self.stub.WatchTaskProgress(
            request, timeout=timeout, metadata=self.call_metadata("WatchTaskProgress")
        )
        try:
            async for response in stream:
                yield cast(pb.WatchTaskProgressResponse, response).event
        except grpc.RpcError as error:
            raise from_rpc_error(error, "WatchTaskProgress") from error
        finally:  # the caller stopped reading (break, aclose, error): end the server's stream too
            stream.cancel()
