"""The dashboard in a real browser (headless Chromium, tests/e2e/browser.py): what gRPC does
shows up on the open page, live; the page rides out a server restart; the queue is the order
claims take; sign-in, actions and cross-site forgeries. Each view is saved as screenshots at a
desktop and a phone width (tests/artifacts/dashboard/), to be looked at."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from tests.e2e.browser import WIDE, launch, screenshots
from tests.e2e.serving import ServeProcess, clean_env
from tests.integration.dashboard import ADMIN_TOKEN, dashboard_port
from tests.integration.helpers import claim, complete, create, register
from tests.integration.monitoring import free_port, monitored_server
from workengine.engine import WorkEngine
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc
from workengine.values import show_time_left
from workengine.web.auth import Policy

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

Stub = pb_grpc.WorkEngineServiceStub
ADMIN = (("authorization", f"Bearer {ADMIN_TOKEN}"),)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async for launched in launch():
        yield launched


# Script errors of every page the tests open: any fails the test (see the autouse fixture).
SCRIPT_ERRORS: list[str] = []


@pytest.fixture(autouse=True)
def no_script_errors() -> Iterator[None]:
    SCRIPT_ERRORS.clear()
    yield
    assert not SCRIPT_ERRORS, SCRIPT_ERRORS


def watch_errors(page: Page) -> Page:
    page.on("pageerror", lambda error: SCRIPT_ERRORS.append(f"{page.url}: {error}"))
    return page


async def open_page(browser: Browser, url: str) -> Page:
    from playwright.async_api import expect

    expect.set_options(timeout=10_000)
    page = watch_errors(await browser.new_page(viewport=WIDE))
    await page.goto(url)
    return page


async def live(page: Page) -> None:
    """Waits until the page's stream is connected."""
    from playwright.async_api import expect

    await expect(page.locator("#connection.live")).to_be_visible()


async def progress(stub: Stub, task_id: str, attempt: int, percent: int, message: str) -> None:
    request = pb.UpdateTaskProgressRequest(
        task_id=task_id, attempt=attempt, progress=percent, message=message
    )
    await stub.UpdateTaskProgress(request)


async def as_admin(stub: Stub, *task_ids: str) -> list[pb.ClaimNextTaskResponse]:
    """With authentication on: orchestrator ada and its tasks, each claimed."""
    await stub.RegisterOrchestrator(
        pb.RegisterOrchestratorRequest(orchestrator_id="ada", display_name="Ada"), metadata=ADMIN
    )
    claimed = []
    for task_id in task_ids:
        request = pb.CreateTaskRequest(
            task_id=task_id, orchestrator_id="ada", workspace_id="ws", title=task_id
        )
        await stub.CreateTask(request, metadata=ADMIN)
        claimed.append(
            await stub.ClaimNextTask(pb.ClaimNextTaskRequest(orchestrator_id="ada"), metadata=ADMIN)
        )
    return claimed


async def test_the_overview_lists_orchestrators_and_progress_sent_through_grpc_shows_within_a_second(
    database_url: str, browser: Browser
) -> None:
    from playwright.async_api import expect

    async with monitored_server(database_url) as server:
        stub = server.stub
        await register(stub, "ada", display_name="Ada Lovelace", timezone="Europe/Paris")
        await register(stub, "grace", display_name="Grace Hopper")
        for i in range(4):
            await create(stub, f"Write chapter {i}", task_id=f"ada-{i}")
        done = await claim(stub)
        await complete(stub, done.context.task.id, done.attempt)
        running = await claim(stub)
        task_id = running.context.task.id
        page = await open_page(browser, server.http + "/")
        await expect(page.locator('tr[data-orchestrator="ada"]')).to_contain_text("Ada Lovelace")
        await expect(page.locator('tr[data-orchestrator="grace"]')).to_contain_text("Grace Hopper")
        row = page.locator(f'li[data-task="{task_id}"]')
        await expect(row.locator(".percent")).to_have_text("0%")
        await live(page)
        loop = asyncio.get_running_loop()
        sent = loop.time()
        await progress(stub, task_id, running.attempt, 42, "halfway through chapter 1")
        await expect(row.locator(".percent")).to_have_text("42%", timeout=1000)
        arrived = loop.time() - sent
        await expect(row.locator(".message")).to_have_text("halfway through chapter 1")
        assert arrived < 1.0, arrived
        assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1  # no reload
        await screenshots(page, "overview")
        await page.goto(server.http + "/orchestrators/ada/stats")
        await expect(page.locator(".figure", has_text="Completed")).to_contain_text("1")
        await screenshots(page, "stats")
        await page.close()


async def test_a_progress_report_shows_the_time_left_within_a_second_and_it_counts_down(
    database_url: str, browser: Browser
) -> None:
    """Issue 15: the ETA each report sets, as "~3 min left" beside the bars of the overview and
    of the task view, and in the task's timeline."""
    from playwright.async_api import expect

    async with monitored_server(database_url) as server:
        stub = server.stub
        await register(stub, "ada", display_name="Ada Lovelace")
        for title in ("Translate the notes", "Draw the diagrams", "Check the tables"):
            await create(stub, title, task_id=title.split()[-1])
        claimed = [await claim(stub) for _ in range(3)]
        page = await open_page(browser, server.http + "/")
        rows = [page.locator(f'li[data-task="{c.context.task.id}"]') for c in claimed]
        await expect(rows[0].locator(".percent")).to_have_text("0%")
        await expect(rows[0].locator(".eta")).to_have_text("")  # no report, no ETA
        await live(page)
        await asyncio.sleep(2)  # the attempts have run a while: their rate gives an ETA
        loop = asyncio.get_running_loop()
        sent = loop.time()
        # By the rate, 2 s or more (page load included) for 1 % leaves 99 times that (3 min or
        # more), for 10 % 9 times (under a minute), for 40 % 1.5 times.
        for c, percent in zip(claimed, (1, 10, 40), strict=True):
            await progress(stub, c.context.task.id, c.attempt, percent, f"{percent}% done")
        await expect(rows[2].locator(".eta")).to_contain_text("left", timeout=1000)
        assert loop.time() - sent < 1.0
        await expect(rows[0].locator(".eta")).to_have_text(re.compile(r"^~\d+ min left$"))
        await expect(rows[1].locator(".eta")).to_have_text(re.compile(r"^~\d+ s left$"))
        await screenshots(page, "overview-eta")
        await expect(rows[2].locator(".eta")).to_have_text("~0 s left", timeout=10_000)  # counted down

        await page.goto(f"{server.http}/tasks/{claimed[1].context.task.id}")
        await expect(page.locator(".status-card .eta")).to_have_text(re.compile(r"^~\d+ s left$"))
        first = await page.locator(".status-card .eta").inner_text()
        await expect(page.locator(".status-card .eta")).not_to_have_text(first, timeout=3000)
        await expect(page.locator(".timeline .event-progress")).to_contain_text(
            re.compile(r"10% · ~\d+ s left · 10% done")
        )
        await screenshots(page, "task-eta")
        await complete(stub, claimed[1].context.task.id, claimed[1].attempt)
        await expect(page.locator(".status-card .badge")).to_have_text("done")
        await expect(page.locator(".status-card .eta")).to_have_count(0)  # a finished task has no ETA
        await page.close()


async def test_the_page_shows_the_time_left_as_watch_does(database_url: str, browser: Browser) -> None:
    """dom.js's timeLeft and values.show_time_left, one rule in two languages."""
    seconds = [-5, 0, 0.49, 0.5, 40, 59.5, 89.9, 90, 150, 3569, 3570, 7500, 86369, 86370, 100800]
    async with monitored_server(database_url) as server:
        page = await open_page(browser, server.http + "/")
        shown = await page.evaluate(
            """async (seconds) => {
                const { timeLeft } = await import("/static/js/dom.js");
                const now = Date.parse("2026-11-30T12:00:00Z");
                return seconds.map((s) => timeLeft(new Date(now + s * 1000).toISOString(), now));
            }""",
            seconds,
        )
        await page.close()
    assert shown == [show_time_left(timedelta(seconds=s)) for s in seconds]


async def test_the_overview_keeps_up_with_a_hundred_tasks_running(
    database_url: str, browser: Browser
) -> None:
    from playwright.async_api import expect

    async with monitored_server(database_url, pool_size=10) as server:
        stub = server.stub
        await register(stub, "ada")
        for i in range(100):
            await create(stub, f"Task {i}", task_id=f"t-{i:03}")
        claimed = [await claim(stub) for _ in range(100)]
        page = await open_page(browser, server.http + "/")
        await expect(page.locator("li.running-task")).to_have_count(100)
        await live(page)
        loop = asyncio.get_running_loop()
        sent = loop.time()
        for round_ in (1, 2):  # 200 updates, 100 tasks: every bar moves twice
            await asyncio.gather(
                *(
                    progress(stub, c.context.task.id, c.attempt, 50 * round_, f"round {round_}")
                    for c in claimed
                )
            )
        await expect(page.locator("li.running-task .percent", has_text="100%")).to_have_count(100)
        assert loop.time() - sent < 10
        await expect(page.locator("li.running-task .message", has_text="round 2")).to_have_count(100)
        await page.close()


async def test_the_page_keeps_going_across_a_server_restart_and_shows_the_events_of_the_gap(
    database_url: str, stub: Stub, browser: Browser
) -> None:
    """`serve` restarts on the same HTTP port while another replica (the test's in-process
    server, same database) goes on reporting progress: the page resumes from its cursor."""
    from playwright.async_api import expect

    http_port = free_port()
    args = ("--database-url", database_url, "--http-port", str(http_port), "--no-migrate")
    first = ServeProcess(*args, env=clean_env())
    second: ServeProcess | None = None
    try:
        first.wait_listening()
        await register(stub, "ada")
        await create(stub, "Survive a restart", task_id="t-1")
        running = await claim(stub)
        page = await open_page(browser, f"http://127.0.0.1:{http_port}/tasks/t-1")
        await live(page)
        await progress(stub, "t-1", running.attempt, 10, "before the restart")
        timeline = page.locator(".timeline")
        await expect(timeline).to_contain_text("before the restart")
        assert await asyncio.to_thread(first.terminate) == 0
        await expect(page.locator("#connection.connecting")).to_be_visible()
        await progress(stub, "t-1", running.attempt, 20, "during the gap")
        await progress(stub, "t-1", running.attempt, 30, "still in the gap")
        second = ServeProcess(*args, env=clean_env())
        await asyncio.to_thread(second.wait_listening)
        await expect(timeline).to_contain_text("still in the gap", timeout=15_000)
        await expect(timeline).to_contain_text("during the gap")
        await live(page)
        await progress(stub, "t-1", running.attempt, 50, "after the restart")
        await expect(timeline).to_contain_text("after the restart")
        await expect(page.locator(".status-card .percent")).to_have_text("50%")
        messages = await timeline.locator(".event-detail").all_inner_texts()
        for message in ("before the restart", "during the gap", "still in the gap", "after the restart"):
            assert sum(message in shown for shown in messages) == 1, messages  # none missed, none twice
        await screenshots(page, "task")
        await page.close()
    finally:
        first.kill()
        if second is not None:
            second.kill()


async def test_the_queue_view_shows_the_order_claims_then_take(database_url: str, browser: Browser) -> None:
    from playwright.async_api import expect

    now = datetime.now(UTC)
    async with monitored_server(database_url) as server:
        stub = server.stub
        await register(stub, "ada", timezone="Asia/Tokyo")
        plan = [
            ("LOW", None),
            ("CRITICAL", None),
            ("MEDIUM", now - timedelta(hours=2)),  # overdue: x10
            ("HIGH", now + timedelta(hours=30)),  # due soon: x2
            ("MEDIUM", now + timedelta(days=10)),
            ("HIGH", None),
            ("LOW", now - timedelta(minutes=5)),
            ("MEDIUM", None),
        ]
        for i, (priority, due) in enumerate(plan):
            await create(stub, f"Task {i} ({priority.lower()})", task_id=f"q-{i}", priority=priority, due=due)
        await create(stub, "Waits for q-0", task_id="q-blocked", depends_on=["q-0"])
        page = await open_page(browser, server.http + "/orchestrators/ada")
        rows = page.locator("table.queue tbody tr")
        await expect(rows).to_have_count(len(plan))
        await expect(page.locator("tr[data-task='q-blocked']")).to_contain_text("waits on q-0")
        shown = [await row.get_attribute("data-task") for row in await rows.all()]
        await live(page)
        await screenshots(page, "queue")
        claimed = []
        for _ in plan:
            claimed.append((await claim(stub)).context.task.id)
        assert shown == claimed
        await expect(rows).to_have_count(0)  # the view follows the claims
        await page.close()


async def test_sign_in_is_required_and_only_a_signed_in_admin_gets_cancel_and_retry(
    database_url: str, browser: Browser
) -> None:
    from playwright.async_api import expect

    async with monitored_server(database_url, admin_token=ADMIN_TOKEN) as server:
        running, failing = await as_admin(server.stub, "running", "failing")
        failed = pb.CompleteTaskRequest(
            task_id="failing", attempt=failing.attempt, status=pb.COMPLETION_STATUS_FAILED
        )
        await server.stub.CompleteTask(failed, metadata=ADMIN)

        context = await browser.new_context(viewport=WIDE)
        page = watch_errors(await context.new_page())
        await page.goto(server.http + "/tasks/running")
        await expect(page).to_have_url(server.http + "/signin")
        await screenshots(page, "signin")
        await page.fill("#token", "not-the-admin-token")
        await page.click("button[type=submit]")
        await expect(page.locator("#failed")).to_be_visible()
        assert "not-the-admin-token" not in page.url
        await page.fill("#token", ADMIN_TOKEN)
        await page.click("button[type=submit]")
        await expect(page.locator("h1")).to_have_text("Overview")
        assert ADMIN_TOKEN not in page.url

        await page.goto(server.http + f"/tasks/{running.context.task.id}")
        await expect(page.locator("button[data-action=cancel]")).to_be_visible()
        await expect(page.locator("button[data-action=retry]")).to_have_count(0)
        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page.click("button[data-action=cancel]")
        await expect(page.locator(".status-card .badge")).to_have_text("cancelled")
        await expect(page.locator("button[data-action=cancel]")).to_have_count(0)

        await page.goto(server.http + f"/tasks/{failing.context.task.id}")
        await expect(page.locator("button[data-action=cancel]")).to_have_count(0)
        await page.click("button[data-action=retry]")
        await expect(page.locator(".status-card .badge")).to_have_text("todo")
        await context.close()

        stranger = await browser.new_context(viewport=WIDE)
        other = watch_errors(await stranger.new_page())
        await other.goto(server.http + f"/tasks/{failing.context.task.id}")
        await expect(other).to_have_url(server.http + "/signin")
        await expect(other.locator("button[data-action]")).to_have_count(0)
        status = await other.evaluate(
            "fetch('/api/tasks/failing/cancel', {method: 'POST'}).then((r) => r.status)"
        )
        assert status == 401
        await stranger.close()


async def test_without_authentication_beyond_loopback_the_page_offers_no_actions(
    engine: WorkEngine, stub: Stub, browser: Browser
) -> None:
    from playwright.async_api import expect

    await register(stub, "ada")
    await create(stub, task_id="t-1")
    async with dashboard_port(engine, Policy(admin_token=None, loopback_host=False)) as url:
        page = await open_page(browser, url + "/tasks/t-1")
        await expect(page.locator(".status-card .badge")).to_have_text("todo")
        await expect(page.locator(".pill.warn")).to_have_text("read-only")
        await expect(page.locator("button[data-action]")).to_have_count(0)
        await page.close()


ATTACK = """<!doctype html><form id="f" method="post" action="{target}"><input name="reason" value="x"></form>
<script>document.getElementById("f").submit()</script>"""


async def test_a_forged_cross_site_post_is_refused(database_url: str, browser: Browser) -> None:
    """A signed-in admin visits another site (another host name: the cookie stays home) and a
    same-site one on another port (the cookie goes along: the CSRF token and Origin stop it)."""
    from playwright.async_api import expect

    async with monitored_server(database_url, admin_token=ADMIN_TOKEN) as server:
        await as_admin(server.stub, "t-1")
        attacker = web.Application()

        async def attack(request: web.Request) -> web.Response:
            return web.Response(
                text=ATTACK.format(target=server.http + "/api/tasks/t-1/cancel"), content_type="text/html"
            )

        attacker.router.add_get("/", attack)
        runner = web.AppRunner(attacker)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        context = await browser.new_context(viewport=WIDE)
        try:
            page = await context.new_page()
            await page.goto(server.http + "/signin")
            await page.fill("#token", ADMIN_TOKEN)
            await page.click("button[type=submit]")
            await expect(page.locator("h1")).to_have_text("Overview")
            for origin in (f"http://localhost:{port}/", f"http://127.0.0.1:{port}/"):
                async with page.expect_response(server.http + "/api/tasks/t-1/cancel") as answered:
                    await page.goto(origin)
                response = await answered.value
                assert response.status in (401, 403), (origin, response.status, await response.text())
            found = await server.stub.GetTask(pb.GetTaskRequest(task_id="t-1"), metadata=ADMIN)
            assert found.task.status == task_pb2.TASK_STATUS_IN_PROGRESS  # not cancelled
        finally:
            await context.close()
            await runner.cleanup()
