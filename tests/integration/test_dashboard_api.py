"""The dashboard's JSON API and live stream against a real server (wired as `serve` wires it):
errors name the field like the gRPC ones, lists page, sign-in guards everything when an admin
token is set, every POST needs the CSRF token and this origin, and the stream resumes from a
cursor exactly."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from tests.integration.dashboard import ADMIN_TOKEN, Browserless, dashboard_port, read_events
from tests.integration.helpers import claim, complete, create, register
from tests.integration.monitoring import monitored_server
from workengine.domain.model import NewOrchestrator, NewTask, TaskStatus
from workengine.engine import WorkEngine
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.web import stream
from workengine.web.auth import SESSION_COOKIE, Policy


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/api/tasks/bad%20id", 400, "task_id"),
        ("/api/tasks/missing", 404, "task_id"),
        ("/api/tasks/missing/events", 404, "task_id"),
        ("/api/tasks/t-1/events?before=-1", 400, "before"),
        ("/api/tasks/t-1/events?limit=0", 400, "limit"),
        ("/api/tasks/t-1/events?before=12x", 400, "before"),
        ("/api/orchestrators/nobody", 404, "orchestrator_id"),
        ("/api/orchestrators/nobody/queue", 404, "orchestrator_id"),
        ("/api/orchestrators/ada/queue?limit=5000", 400, "limit"),
        ("/api/orchestrators/bad!id/tasks", 400, "orchestrator_id"),
        ("/api/orchestrators/ada/tasks?page_size=ten", 400, "page_size"),
        ("/api/orchestrators/ada/tasks?page_size=5000", 400, "page_size"),
        ("/api/orchestrators/ada/tasks?page_token=not-a-token", 400, "page_token"),
        ("/api/orchestrators/ada/tasks?status=SLEEPING", 400, "status"),
        ("/api/orchestrators/ada/blocked?page_token=x", 400, "page_token"),
        ("/api/orchestrators/ada/stats?start_time=yesterday", 400, "start_time"),
        ("/api/orchestrators/ada/stats?start_time=2025-01-02T00:00:00", 400, "start_time"),
        (
            "/api/orchestrators/ada/stats?start_time=2025-01-02T00:00:00Z&end_time=2025-01-01T00:00:00Z",
            400,
            "end_time",
        ),
        ("/api/overview?page_token=zzz", 400, "page_token"),
        ("/api/events?task_id=", 400, "task_id"),
        ("/api/events?task_id=t-1&orchestrator_id=ada", 400, "target"),
        ("/api/events?task_id=missing", 404, "task_id"),
        ("/api/events?orchestrator_id=no%20body", 400, "orchestrator_id"),
        ("/api/events?orchestrator_id=nobody", 404, "orchestrator_id"),
        ("/api/events?after=-5", 400, "after"),
    ],
)
async def test_a_bad_request_is_a_4xx_naming_the_field(
    database_url: str, path: str, status: int, field: str
) -> None:
    async with monitored_server(database_url) as server:
        await register(server.stub, "ada")
        await create(server.stub, task_id="t-1")
        client = Browserless(server.http)
        try:
            answer = await client.get(path)
        finally:
            await client.close()
    assert answer.status == status, answer
    assert answer.field == field, answer
    assert answer.body["error"].startswith(f"{field}: ") or status == 404, answer


async def test_an_unreadable_resume_cursor_names_last_event_id(database_url: str) -> None:
    async with monitored_server(database_url) as server:
        client = Browserless(server.http)
        try:
            answer = await client.get("/api/events", **{"Last-Event-ID": "tomorrow"})
        finally:
            await client.close()
    assert (answer.status, answer.field) == (400, "Last-Event-ID"), answer


async def test_lists_page_with_tokens_and_never_repeat_or_skip(database_url: str) -> None:
    async with monitored_server(database_url) as server:
        for name in ("ada", "bob", "cy"):
            await register(server.stub, name)
        created = [(await create(server.stub, f"task {i}", task_id=f"t-{i}")).id for i in range(7)]
        client = Browserless(server.http)
        try:
            seen, token, pages = [], "", 0
            while True:
                answer = await client.get(f"/api/orchestrators/ada/tasks?page_size=3&page_token={token}")
                assert answer.status == 200, answer
                seen += [t["id"] for t in answer.body["tasks"]]
                pages += 1
                token = answer.body["next_page_token"]
                if not token:
                    break
            first = await client.get("/api/overview?page_size=2")
            second = await client.get(f"/api/overview?page_size=2&page_token={first.body['next_page_token']}")
            other_filter = await client.get(
                f"/api/orchestrators/ada/tasks?page_size=3&status=DONE&page_token={first.body['next_page_token']}"
            )
        finally:
            await client.close()
    assert (seen, pages) == (created, 3)
    assert [o["id"] for o in first.body["orchestrators"] + second.body["orchestrators"]] == [
        "ada",
        "bob",
        "cy",
    ]
    assert second.body["next_page_token"] == ""
    assert (other_filter.status, other_filter.field) == (400, "page_token")


async def test_the_overview_counts_and_shows_what_runs(database_url: str) -> None:
    async with monitored_server(database_url) as server:
        await register(server.stub, "ada")
        for i in range(3):
            await create(server.stub, f"task {i}", task_id=f"t-{i}")
        done = await claim(server.stub)
        await complete(server.stub, done.context.task.id, done.attempt)
        running = await claim(server.stub)
        await server.stub.UpdateTaskProgress(
            pb.UpdateTaskProgressRequest(
                task_id=running.context.task.id, attempt=1, progress=40, message="reading"
            )
        )
        client = Browserless(server.http)
        try:
            overview = (await client.get("/api/overview")).body
        finally:
            await client.close()
    [ada] = overview["orchestrators"]
    assert {k: v for k, v in ada["counts"].items() if v} == {"TODO": 1, "IN_PROGRESS": 1, "DONE": 1}
    assert overview["queue"]["counts"] == {"TODO": 1, "IN_PROGRESS": 1, "BLOCKED": 0}
    [shown] = overview["running"]
    assert (shown["id"], shown["progress"], shown["progress_message"]) == (
        running.context.task.id,
        40,
        "reading",
    )
    assert sum(m["completed"] for m in overview["throughput"]["minutes"]) == 1
    assert int(overview["cursor"]) > 0


async def test_with_an_admin_token_everything_needs_sign_in_and_the_token_stays_out_of_urls_and_logs(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with monitored_server(database_url, admin_token=ADMIN_TOKEN) as server:
        client = Browserless(server.http)
        try:
            assert (await client.get("/api/overview")).status == 401
            assert (await client.get("/api/events")).status == 401
            assert (await client.get("/api/session")).status == 401
            page = await client.get("/tasks/t-1")
            assert (page.status, page.headers["Location"]) == (303, "/signin")
            assert (await client.get("/signin")).status == 200
            wrong = await client.post("/signin", data={"token": "not-the-admin-token"})
            assert (wrong.status, wrong.headers["Location"]) == (303, "/signin?failed=1")
            assert SESSION_COOKIE not in wrong.headers.get("Set-Cookie", "")
            answer = await client.post("/signin", data={"token": ADMIN_TOKEN})
            cookie = answer.headers["Set-Cookie"]
            assert ADMIN_TOKEN not in answer.headers["Location"] + cookie
            assert re.search(rf"{SESSION_COOKIE}=[\w-]{{40,}};", cookie), cookie
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie, cookie
            assert (await client.get("/api/overview")).status == 200
            session = (await client.get("/api/session")).body
            assert session["signed_in"] and session["can_act"] and len(session["csrf_token"]) >= 40
            out = await client.post("/signout", **{"X-CSRF-Token": session["csrf_token"]})
            assert out.status == 303
            assert (await client.get("/api/overview")).status == 401
        finally:
            await client.close()
    assert ADMIN_TOKEN not in caplog.text


async def cancellable(engine: WorkEngine) -> str:
    await engine.access.register(NewOrchestrator("ada", "Ada"), None)
    return (await engine.tasks.create(NewTask("t-1", "ada", "ws", "a task"))).id


async def test_a_post_needs_the_csrf_token_and_this_origin(database_url: str) -> None:
    async with monitored_server(database_url, admin_token=ADMIN_TOKEN) as server:
        engine = server.serving.grpc.engine
        task_id = await cancellable(engine)
        client = Browserless(server.http)
        try:
            csrf = await client.sign_in()
            cancel = f"/api/tasks/{task_id}/cancel"
            assert (await client.post(cancel)).status == 403
            assert (await client.post(cancel, **{"X-CSRF-Token": "guess"})).status == 403
            forged = {"X-CSRF-Token": csrf, "Origin": "http://evil.example"}
            assert (await client.post(cancel, **forged)).status == 403
            cross = {"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}
            assert (await client.post(cancel, **cross)).status == 403
            assert (await engine.tasks.get_with_attempts(task_id))[0].status is TaskStatus.TODO
            ok = await client.post(cancel, **{"X-CSRF-Token": csrf, "Origin": server.http})
            assert (ok.status, ok.body["task"]["status"]) == (200, "CANCELLED"), ok
            again = await client.post(cancel, **{"X-CSRF-Token": csrf})
            assert again.status == 409 and "cannot be cancelled" in again.body["error"], again
        finally:
            await client.close()


async def test_without_authentication_beyond_loopback_the_dashboard_is_read_only(engine: WorkEngine) -> None:
    task_id = await cancellable(engine)
    async with dashboard_port(engine, Policy(admin_token=None, loopback_host=False)) as url:
        client = Browserless(url)
        try:
            session = (await client.get("/api/session")).body
            refused = await client.post(
                f"/api/tasks/{task_id}/cancel", **{"X-CSRF-Token": session["csrf_token"]}
            )
            overview = await client.get("/api/overview")
        finally:
            await client.close()
    assert not session["can_act"] and "read-only" in session["read_only_reason"]
    assert refused.status == 403 and "read-only" in refused.body["error"]
    assert overview.status == 200


@pytest.mark.parametrize(
    "policy",
    [Policy(admin_token=None), Policy(admin_token=None, client_certificates=True, loopback_host=False)],
    ids=["no authentication", "client certificates only"],
)
async def test_without_sign_in_a_foreign_host_name_is_refused(engine: WorkEngine, policy: Policy) -> None:
    """A DNS-rebinding page reaches 127.0.0.1 (or an SSH tunnel to it) under its own name: it
    must get nothing."""
    async with dashboard_port(engine, policy) as url:
        client = Browserless(url)
        try:
            rebound = await client.get("/api/overview", Host="attacker.example:8081")
            local = await client.get("/api/overview", Host="localhost:8081")
        finally:
            await client.close()
    assert rebound.status == 403 and "loopback" in rebound.body["error"]
    assert local.status == 200


async def test_the_stream_resumes_from_last_event_id_exactly(database_url: str) -> None:
    async with monitored_server(database_url) as server:
        await register(server.stub, "ada")
        task = await create(server.stub, task_id="t-1")
        started = await claim(server.stub)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.http}/api/tasks/{task.id}") as answer:
                cursor = (await answer.json())["cursor"]
            stream = await http.get(f"{server.http}/api/events?task_id={task.id}&after={cursor}")
            assert stream.headers["Content-Type"] == "text/event-stream"
            for percent in (10, 20, 30):
                await server.stub.UpdateTaskProgress(
                    pb.UpdateTaskProgressRequest(task_id=task.id, attempt=started.attempt, progress=percent)
                )
            live = await read_events(stream, 3)
            stream.close()
            # The browser's reconnection: Last-Event-ID is the first event's id.
            resumed = await http.get(
                f"{server.http}/api/events?task_id={task.id}&after={cursor}",
                headers={"Last-Event-ID": live[0][0]},
            )
            replayed = await read_events(resumed, 2)
            resumed.close()
    assert [(name, data["kind"], data["progress"]) for _, name, data in live] == [
        ("task", "PROGRESS", 10),
        ("task", "PROGRESS", 20),
        ("task", "PROGRESS", 30),
    ]
    assert [event_id for event_id, _, _ in live] == [data["cursor"] for _, _, data in live]
    assert replayed == live[1:]


async def test_a_running_tasks_eta_is_in_its_json_and_in_its_progress_events(database_url: str) -> None:
    async with monitored_server(database_url) as server:
        await register(server.stub, "ada")
        task = await create(server.stub, task_id="t-1")
        started = await claim(server.stub)
        async with aiohttp.ClientSession() as http:
            before = await (await http.get(f"{server.http}/api/tasks/{task.id}")).json()
            stream = await http.get(f"{server.http}/api/events?task_id={task.id}&after={before['cursor']}")
            await asyncio.sleep(0.5)  # the attempt has run a while: its rate gives an ETA
            reported_at = datetime.now(UTC)
            await server.stub.UpdateTaskProgress(
                pb.UpdateTaskProgressRequest(task_id=task.id, attempt=started.attempt, progress=10)
            )
            [(_, _, report)] = await read_events(stream, 1)
            stream.close()
            running = await (await http.get(f"{server.http}/api/tasks/{task.id}")).json()
            overview = await (await http.get(f"{server.http}/api/overview")).json()
            await complete(server.stub, task.id, started.attempt)
            done = await (await http.get(f"{server.http}/api/tasks/{task.id}")).json()
    assert before["task"]["estimated_completion_at"] is None  # no report yet
    eta = report["estimated_completion_at"]
    # 10 % after half a second or more: by the attempt's rate, 9 times as long again.
    assert timedelta(seconds=4) < datetime.fromisoformat(eta) - reported_at < timedelta(minutes=1)
    assert report["task"]["estimated_completion_at"] == eta
    assert running["task"]["estimated_completion_at"] == eta
    assert [t["estimated_completion_at"] for t in overview["running"]] == [eta]
    assert done["task"]["status"] == "DONE" and done["task"]["estimated_completion_at"] is None


async def test_a_stream_ends_when_the_server_stops(database_url: str) -> None:
    async with monitored_server(database_url) as server:
        http = aiohttp.ClientSession()
        stream = await http.get(f"{server.http}/api/events")
        await asyncio.sleep(0.2)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await server.serving.stop(5)
        stopped_in = loop.time() - began
        ended = await asyncio.wait_for(stream.content.read(), 5)
        stream.close()
        await http.close()
    assert stopped_in < 3, stopped_in  # not aiohttp's wait for open requests
    assert ended.startswith(b"retry: ")


async def test_retry_grants_one_more_attempt_when_the_task_used_all_of_its_own(database_url: str) -> None:
    async with monitored_server(database_url) as server:
        await register(server.stub, "ada")
        await create(server.stub, task_id="t-1", max_attempts=1)
        claimed = await claim(server.stub)
        await complete(server.stub, "t-1", claimed.attempt, pb.COMPLETION_STATUS_FAILED, error="no luck")
        client = Browserless(server.http)
        try:
            csrf = (await client.get("/api/session")).body["csrf_token"]
            retried = await client.post("/api/tasks/t-1/retry", **{"X-CSRF-Token": csrf})
            again = await client.post("/api/tasks/t-1/retry", **{"X-CSRF-Token": csrf})
        finally:
            await client.close()
    assert retried.status == 200, retried
    assert (retried.body["task"]["status"], retried.body["task"]["max_attempts"]) == ("TODO", 2)
    assert again.status == 409 and "only a FAILED task" in again.body["error"], again


async def test_a_stream_ends_once_its_session_is_signed_out(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "HEARTBEAT_SECONDS", 0.2)  # where the session is checked again
    async with monitored_server(database_url, admin_token=ADMIN_TOKEN) as server:
        client = Browserless(server.http)
        try:
            await client.sign_in()
            csrf = (await client.get("/api/session")).body["csrf_token"]
            events = await client.session.get(f"{server.http}/api/events")
            assert events.status == 200
            await client.post("/signout", **{"X-CSRF-Token": csrf})
            ended = await asyncio.wait_for(events.content.read(), 5)  # returns once the stream ends
            events.close()
        finally:
            await client.close()
    assert ended.startswith(b"retry: ")
