"""workengine.client's arguments for execution history (docs/history.md): `history_limit` on the
calls that return a context, sent only when given (the field is `optional`: unset means the
server's default, 5, while 0 means none), and `lessons` on complete_task."""

from __future__ import annotations

import asyncio

import pytest

from workengine.client import AsyncWorkEngineClient, InvalidArgument, WorkEngineClient, requests
from workengine.v1 import work_engine_service_pb2 as pb


def test_history_limit_is_sent_only_when_given() -> None:
    unset = [
        requests.claim_next_task("ada", None, None),
        requests.execute_task("ada", "t", None, ""),
        requests.prepare_task_context("ada", "t"),
    ]
    zero = [
        requests.claim_next_task("ada", None, None, history_limit=0),
        requests.execute_task("ada", "t", None, "", history_limit=0),
        requests.prepare_task_context("ada", "t", history_limit=0),
    ]

    assert [request.HasField("history_limit") for request in unset] == [False, False, False]
    assert [request.HasField("history_limit") for request in zero] == [True, True, True]
    assert requests.claim_next_task("ada", None, None, history_limit=7).history_limit == 7


def test_lessons_go_into_the_result_and_a_bare_string_is_refused() -> None:
    request = requests.complete_task(
        "t", 1, pb.COMPLETION_STATUS_FAILED, None, "429", None, (), lessons=["throttle to 5/s"]
    )

    assert list(request.result.lessons) == ["throttle to 5/s"]
    with pytest.raises(TypeError):
        requests.complete_task("t", 1, pb.COMPLETION_STATUS_FAILED, None, "429", None, (), lessons="one")


async def test_a_lesson_comes_back_in_the_next_context_as_far_as_history_limit_allows(target: str) -> None:
    async with AsyncWorkEngineClient(target) as client:
        await client.register_orchestrator("Ada", orchestrator_id="ada")
        task = await client.create_task("ada", "ws", "call the API")
        first = await client.claim_next_task("ada", history_limit=0)
        await client.complete_task(
            task.id, first.attempt, pb.COMPLETION_STATUS_FAILED, error="429", lessons=["throttle to 5/s"]
        )
        await client.retry_task(task.id)
        default = await client.prepare_task_context("ada", task.id)
        none = await client.prepare_task_context("ada", task.id, history_limit=0)
        second = await client.execute_task("ada", task.id, history_limit=1)

    def sync_refusal() -> str | None:
        with WorkEngineClient(target) as client, pytest.raises(InvalidArgument) as raised:
            client.prepare_task_context("ada", task.id, history_limit=51)
        return raised.value.field

    assert not first.context.history and not first.context.HasField("estimate")
    assert [(past.attempt, past.error, list(past.lessons)) for past in default.history] == [
        (1, "429", ["throttle to 5/s"])
    ]
    assert default.HasField("estimate") and default.estimate.min_samples == 5
    assert not none.history and not none.HasField("estimate")
    assert [past.task_id for past in second.context.history] == [task.id]
    assert await asyncio.to_thread(sync_refusal) == "history_limit"
