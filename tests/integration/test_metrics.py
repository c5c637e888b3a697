"""/metrics as work happens: every work metric moves, RPC codes are counted (the guard's refusals
too), the queue gauges follow the database, two replicas each count their own, and /metrics
answers only whom it should. A server wired as `serve` wires it, scraped over HTTP."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from datetime import timedelta
from pathlib import Path

import grpc
import psycopg
import pytest
from google.protobuf import duration_pb2

from tests.integration.helpers import claim, complete, create, expect_error, register
from tests.integration.monitoring import Monitored, Samples, eventually, monitored_server, value
from workengine.store.migrate import migrate
from workengine.v1 import work_engine_service_pb2 as pb

SERVICE = "workengine.v1.WorkEngineService"


def seconds(amount: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromTimedelta(timedelta(seconds=amount))
    return duration


def handled(samples: Samples, method: str, code: str, kind: str = "unary") -> float:
    return value(
        samples,
        "grpc_server_handled_total",
        grpc_type=kind,
        grpc_service=SERVICE,
        grpc_method=method,
        grpc_code=code,
    )


async def run_every_outcome(server: Monitored) -> None:
    """One task each: completed, failed then retried, blocked until its retry time, lease lost,
    cancelled while running; one left ready."""
    stub = server.stub
    await register(stub)
    for title in ("done", "failed", "blocked", "lost", "cancelled", "waiting"):
        await create(stub, title)
    done = await claim(stub)
    await complete(stub, done.context.task.id, done.attempt)
    failed = await claim(stub)
    await complete(stub, failed.context.task.id, failed.attempt, pb.COMPLETION_STATUS_FAILED, error="boom")
    await stub.RetryTask(pb.RetryTaskRequest(task_id=failed.context.task.id))
    again = await claim(stub)  # the retried task, ready again
    await complete(stub, again.context.task.id, again.attempt)
    blocked = await claim(stub)
    await stub.CompleteTask(
        pb.CompleteTaskRequest(
            task_id=blocked.context.task.id,
            attempt=blocked.attempt,
            status=pb.COMPLETION_STATUS_BLOCKED,
            retry_after=seconds(1),
        )
    )
    lost = await claim(stub, lease_duration=seconds(1))
    running = await claim(stub)
    await stub.CancelTask(pb.CancelTaskRequest(task_id=running.context.task.id, reason="not needed"))
    assert {lost.context.task.title, running.context.task.title} <= {"lost", "cancelled", "waiting"}


async def test_every_work_metric_moves_as_work_happens(database_url: str) -> None:
    async with monitored_server(database_url) as server:
        before = await server.scrape()
        assert value(before, "workengine_tasks_created_total") == 0
        await run_every_outcome(server)

        async def moved() -> None:
            after = await server.scrape()
            assert value(after, "workengine_tasks_created_total") == 6
            assert value(after, "workengine_tasks_started_total") == 6  # 5 first claims + the retry
            finished = {
                outcome: value(after, "workengine_tasks_finished_total", outcome=outcome)
                for outcome in ("completed", "failed", "blocked", "cancelled")
            }
            assert finished == {"completed": 2, "failed": 1, "blocked": 1, "cancelled": 1}
            assert value(after, "workengine_lease_expiries_total") == 1
            retries = {
                reason: value(after, "workengine_task_retries_total", reason=reason)
                for reason in ("requested", "retry_after", "lease_expired")
            }
            assert retries == {"requested": 1, "retry_after": 1, "lease_expired": 1}
            assert value(after, "workengine_queue_wait_seconds_count") == 6
            assert value(after, "workengine_task_run_seconds_count", outcome="completed") == 2
            assert value(after, "workengine_task_run_seconds_count", outcome="cancelled") == 1
            assert value(after, "workengine_task_run_seconds_sum", outcome="completed") > 0
            # Back to TODO: the blocked one (retry time), the lost one (lease), the waiting one.
            assert value(after, "workengine_tasks", status="TODO") == 3
            assert value(after, "workengine_tasks", status="IN_PROGRESS") == 0
            assert value(after, "workengine_oldest_ready_task_age_seconds") > 0

        await eventually(moved)


async def test_rpcs_are_counted_with_their_codes_and_the_pool_and_watches_show(database_url: str) -> None:
    async with monitored_server(database_url) as server:
        stub = server.stub
        await register(stub)
        await expect_error(stub.GetTask(pb.GetTaskRequest(task_id="missing")), grpc.StatusCode.NOT_FOUND)
        await expect_error(
            stub.CreateTask(pb.CreateTaskRequest(orchestrator_id="ada", workspace_id="ws")),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        watch = stub.WatchTaskProgress(pb.WatchTaskProgressRequest(orchestrator_id="ada"))
        await create(stub, "watched")
        async for _ in watch:  # the snapshot of the orchestrator's tasks: the watch is subscribed
            break
        await create(stub, "after the snapshot")  # its event reaches the watch through the feed
        await eventually(lambda: events_delivered(server))
        samples = await server.scrape()
        assert handled(samples, "RegisterOrchestrator", "OK") == 1
        assert handled(samples, "GetTask", "NOT_FOUND") == 1
        assert handled(samples, "CreateTask", "INVALID_ARGUMENT") == 1
        assert value(samples, "grpc_server_started_total", grpc_type="unary", grpc_service=SERVICE,
                     grpc_method="CreateTask") == 3  # fmt: skip
        assert value(samples, "grpc_server_handling_seconds_count", grpc_type="unary", grpc_service=SERVICE,
                     grpc_method="GetTask") == 1  # fmt: skip
        assert value(samples, "workengine_watch_streams_open") == 1
        stream = {"grpc_type": "server_stream", "grpc_service": SERVICE, "grpc_method": "WatchTaskProgress"}
        assert value(samples, "grpc_server_msg_sent_total", **stream) >= 1
        assert value(samples, "workengine_db_pool_size") > 0
        watch.cancel()
        await eventually(lambda: watch_closed(server))
        samples = await server.scrape()
        assert value(samples, "grpc_server_handled_total", grpc_code="CANCELLED", **stream) == 1


async def events_delivered(server: Monitored) -> None:
    assert value(await server.scrape(), "workengine_event_feed_lag_seconds_count") >= 1


async def watch_closed(server: Monitored) -> None:
    assert value(await server.scrape(), "workengine_watch_streams_open") == 0


async def test_two_replicas_each_count_their_own_and_agree_on_the_queue(database_url: str) -> None:
    async with monitored_server(database_url) as one, monitored_server(database_url) as other:
        await register(one.stub)
        for title in ("a", "b", "c"):
            await create(one.stub, title)
        for title in ("d", "e"):
            await create(other.stub, title)
        first = await claim(other.stub)
        await complete(other.stub, first.context.task.id, first.attempt)

        async def counted() -> None:
            mine, theirs = await one.scrape(), await other.scrape()
            assert value(mine, "workengine_tasks_created_total") == 3
            assert value(theirs, "workengine_tasks_created_total") == 2
            assert value(mine, "workengine_tasks_finished_total", outcome="completed") == 0
            assert value(theirs, "workengine_tasks_finished_total", outcome="completed") == 1
            for samples in (mine, theirs):  # cluster-wide: the same on both
                assert value(samples, "workengine_tasks", status="TODO") == 4

        await eventually(counted)


async def test_with_authentication_metrics_answer_loopback_only_unless_a_token_is_set(
    database_url: str,
) -> None:
    token = "an-admin-token-long-enough"
    async with monitored_server(database_url, host="0.0.0.0", admin_token=token) as server:
        status, _ = await server.get("/metrics")
        assert status == 200  # from 127.0.0.1
        outside = server.http.replace("127.0.0.1", await outside_address())
        server_outside = Monitored(server.serving, server.stub, server.channel, outside)
        status, body = await server_outside.get("/metrics")
        assert status == 403 and "--metrics-token" in body
        assert (await server_outside.get("/healthz"))[0] == 200  # probes stay open
        await expect_error(stub_call(server), grpc.StatusCode.UNAUTHENTICATED)
        samples = await server.scrape()
        assert handled(samples, "ListOrchestrators", "UNAUTHENTICATED") == 1
    metrics_token = "a-metrics-token-long-enough"
    async with monitored_server(database_url, admin_token=token, metrics_token=metrics_token) as server:
        assert (await server.get("/metrics"))[0] == 401
        assert (await server.get("/metrics", Authorization="Bearer wrong"))[0] == 401
        assert (await server.get("/metrics", Authorization=metrics_token))[0] == 401  # no scheme
        assert (await server.get("/metrics", Authorization=f"Bearer {metrics_token}"))[0] == 200
        assert (await server.get("/metrics", Authorization=f"bearer {metrics_token}"))[0] == 200


def stub_call(server: Monitored) -> object:
    return server.stub.ListOrchestrators(pb.ListOrchestratorsRequest())


async def outside_address() -> str:
    """This machine's address on a non-loopback interface (no packet is sent: connecting a UDP
    socket only picks the route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        address = str(probe.getsockname()[0])
    assert not address.startswith("127."), "no non-loopback address to test from"
    return address


async def test_readyz_says_when_the_schema_is_behind(empty_database_url: str) -> None:
    await asyncio.to_thread(migrate, empty_database_url, "0006")
    async with monitored_server(empty_database_url) as server:
        status, body = await server.get("/readyz")
        assert status == 503 and "workengine migrate" in body
        await asyncio.to_thread(migrate, empty_database_url)
        status, body = await server.get("/readyz")
        assert status == 200, body
        assert (await server.get("/nowhere"))[0] == 404


DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "workengine.json"
METRIC_NAME = re.compile(r"\b(?:grpc_server|workengine)_[a-z_]+\b")


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    assert all(target["datasource"] == p["datasource"] for p in panels for target in p["targets"])
    return [target["expr"] for p in panels for target in p["targets"]]


async def test_every_metric_the_grafana_dashboard_queries_exists_in_metrics(database_url: str) -> None:
    async with monitored_server(database_url) as server:
        await run_every_outcome(server)
        samples = await server.scrape()
    exposed = {name for name, _ in samples}
    queried = {name for query in dashboard_queries() for name in METRIC_NAME.findall(query)}
    assert len(queried) >= 15
    assert queried <= exposed, sorted(queried - exposed)


async def test_readyz_stays_ready_on_a_later_releases_schema(database_url: str) -> None:
    """A rolling upgrade migrates under the previous release's replicas: they stay ready."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as connection:
        await connection.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    async with monitored_server(database_url, migrate=False) as server:
        status, body = await server.get("/readyz")
    assert status == 200, body
    assert json.loads(body)["schema_revision"] == "9999_from_the_future"


async def test_a_lost_lease_out_of_attempts_counts_as_a_failure(database_url: str) -> None:
    async with monitored_server(database_url) as server:
        await register(server.stub)
        await create(server.stub, "once", max_attempts=1)
        await claim(server.stub, lease_duration=seconds(1))

        async def failed() -> None:
            samples = await server.scrape()
            assert value(samples, "workengine_lease_expiries_total") == 1
            assert value(samples, "workengine_tasks_finished_total", outcome="failed") == 1
            assert value(samples, "workengine_task_retries_total", reason="lease_expired") == 0
            assert value(samples, "workengine_task_run_seconds_count", outcome="lease_expired") == 1
            assert value(samples, "workengine_task_run_seconds_sum", outcome="lease_expired") >= 1

        await eventually(failed)


async def test_a_call_past_its_deadline_counts_as_deadline_exceeded(database_url: str) -> None:
    async with monitored_server(database_url) as server:
        await register(server.stub)
        watch = server.stub.WatchTaskProgress(pb.WatchTaskProgressRequest(orchestrator_id="ada"), timeout=1)
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            async for _ in watch:
                pass
        assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

        async def counted() -> None:
            samples = await server.scrape()
            assert handled(samples, "WatchTaskProgress", "DEADLINE_EXCEEDED", kind="server_stream") == 1
            assert value(samples, "workengine_watch_streams_open") == 0

        await eventually(counted)
