"""How the CLI words things for a person: tables, summaries, durations, a task's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workengine.cli.describe import activity, outcome, state
from workengine.cli.output import seconds, summary, table, when
from workengine.cli.stats import stats_summary
from workengine.cli.tasks import task_summary
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb


def task(status: int, **fields: object) -> task_pb2.Task:
    return task_pb2.Task(id="t", title="T", status=status, **fields)  # type: ignore[arg-type]


def test_a_table_aligns_columns_and_leaves_the_last_unpadded() -> None:
    assert table(["ID", "TITLE"], [["t-10", "a"], ["t-2", "longer title"]]).splitlines() == [
        "ID    TITLE",
        "t-10  a",
        "t-2   longer title",
    ]


def test_a_summary_aligns_its_labels_and_skips_empty_values() -> None:
    assert summary("task t: T", [("status", "TODO"), ("due", ""), ("priority", "HIGH")]) == (
        "task t: T\n  status    TODO\n  priority  HIGH"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.0167, "17ms"), (4.25, "4.25s"), (12.34, "12.3s"), (245, "4m 05s"), (7380, "2h 03m")],
)
def test_durations_read_as_a_person_says_them(value: float, expected: str) -> None:
    assert seconds(value) == expected


def test_an_unset_time_is_blank_and_a_set_one_is_utc() -> None:
    stamp = task_pb2.Task().create_time
    assert when(stamp) == ""
    stamp.FromDatetime(datetime(2026, 12, 1, 17, 0, tzinfo=UTC))
    assert when(stamp) == "2026-12-01 17:00:00Z"


def test_a_finished_task_states_its_outcome_not_its_last_progress() -> None:
    done = task(task_pb2.TASK_STATUS_DONE, progress=50, progress_message="py-1 is halfway")
    done.start_time.FromDatetime(datetime(2026, 1, 1, tzinfo=UTC))
    done.complete_time.FromDatetime(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=4.2))
    failed = task(
        task_pb2.TASK_STATUS_FAILED,
        progress_message="py-1 is halfway",
        result=task_pb2.TaskResult(error="boom"),
    )
    cancelled = task(task_pb2.TASK_STATUS_CANCELLED, status_reason="not needed")
    blocked = task(task_pb2.TASK_STATUS_BLOCKED, unmet_dependency_count=2)

    assert [outcome(t) for t in (done, failed, cancelled, blocked)] == [
        "done in 4.2s",
        "failed: boom",
        "cancelled: not needed",
        "blocked: waiting for 2 dependencies",
    ]
    assert [state(t) for t in (done, failed, cancelled)] == [
        "DONE in 4.2s",
        "FAILED: boom",
        "CANCELLED: not needed",
    ]
    assert activity(failed, "") == "failed: boom"
    assert (
        outcome(task(task_pb2.TASK_STATUS_FAILED), "lease expired 3 times") == "failed: lease expired 3 times"
    )


def test_a_running_task_states_its_progress() -> None:
    running = task(task_pb2.TASK_STATUS_IN_PROGRESS, progress=40, progress_message="drafting")

    assert state(running) == "IN_PROGRESS 40%: drafting"
    assert activity(running, "reviewing") == "reviewing"
    assert outcome(running) == "" and state(task(task_pb2.TASK_STATUS_TODO)) == "TODO"


def test_stats_read_as_counts_rate_and_times() -> None:
    stats = pb.GetExecutionStatsResponse(
        total_tasks=4,
        completed_tasks=3,
        failed_tasks=1,
        success_rate_percent=75.0,
        average_completion_seconds=2.0,
        p50_completion_seconds=1.5,
        p95_completion_seconds=70,
        by_status=[task_pb2.StatusCount(status=task_pb2.TASK_STATUS_DONE, count=3)],
    )

    assert stats_summary("ada", stats).splitlines() == [
        "orchestrator ada: 4 tasks",
        "  done          3",
        "  failed        1",
        "  success rate  75.0%",
        "  completion    avg 2s, p50 1.5s, p95 1m 10s",
        "  by status     DONE 3",
    ]
    assert "success rate  -" in stats_summary("ada", pb.GetExecutionStatsResponse())


def test_a_task_summary_shows_the_first_line_of_a_long_description() -> None:
    short = task(task_pb2.TASK_STATUS_TODO, description="Draft it.")
    long = task(task_pb2.TASK_STATUS_TODO, description="Draft it.\nThen review it.")

    assert "  about   Draft it." in task_summary(short).splitlines()
    assert "  about   Draft it.…" in task_summary(long).splitlines()
    assert "about" not in task_summary(task(task_pb2.TASK_STATUS_TODO))
