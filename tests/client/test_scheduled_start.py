"""workengine.client's create_task takes a scheduled start (`not_before`), and `workengine task
create --not-before` sends it."""

from __future__ import annotations

import asyncio
import contextlib
import io
from datetime import UTC, datetime, timedelta

from workengine.cli import main
from workengine.client import AsyncWorkEngineClient
from workengine.v1 import task_pb2


async def test_a_task_created_with_not_before_waits_for_it(target: str) -> None:
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    async with AsyncWorkEngineClient(target) as client:
        await client.register_orchestrator("Ada", orchestrator_id="ada")
        task = await client.create_task("ada", "ws", "later", not_before=later)
        claimed = await client.claim_next_task("ada")

    assert task.status == task_pb2.TASK_STATUS_BLOCKED
    assert task.not_before_time.ToDatetime(UTC) == later == task.retry_time.ToDatetime(UTC)
    assert not claimed.HasField("context")


async def test_the_command_line_creates_a_scheduled_task_and_shows_its_start(target: str) -> None:
    def run() -> tuple[int, int, str]:  # in a thread: the server answers on this test's loop
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            registered = main(
                ["orchestrator", "register", "--target", target, "--id", "ada", "--name", "Ada"]
            )
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            created = main(
                ["task", "create", "--target", target, "--orchestrator", "ada", "--workspace", "ws",
                 "--title", "later", "--not-before", "2099-01-01T09:00:00Z"]
            )  # fmt: skip
        return registered, created, out.getvalue()

    registered, created, shown = await asyncio.to_thread(run)

    assert (registered, created) == (0, 0), shown
    assert "not before" in shown and "2099-01-01 09:00:00Z" in shown, shown
