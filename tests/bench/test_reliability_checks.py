"""The reliability harness's checks are not vacuous: on a made-up run of two tasks (the second
depending on the first, whose first daemon was killed) they pass, and each kind of violation
they exist for is reported."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from bench.reliability import Report, Settings, check
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb

Event = tuple[int, str, str, int]
EXPIRED, COMPLETED = task_pb2.ATTEMPT_OUTCOME_LEASE_EXPIRED, task_pb2.ATTEMPT_OUTCOME_COMPLETED


@dataclass
class Log:
    name: str
    killed: bool = False
    entries: list[dict[str, Any]] = field(default_factory=list)

    def lines(self) -> list[dict[str, Any]]:
        return self.entries


def entry(event: str, task: str, attempt: int) -> dict[str, Any]:
    return {"event": event, "task": task, "attempt": attempt}


@dataclass
class Run:
    fetched: list[pb.GetTaskResponse]
    table: list[Event]
    streamed: list[Event]
    daemons: list[Log]


def task(task_id: str, attempts: list[tuple[str, task_pb2.AttemptOutcome]]) -> pb.GetTaskResponse:
    return pb.GetTaskResponse(
        task=task_pb2.Task(
            id=task_id,
            status=task_pb2.TASK_STATUS_DONE,
            attempt=len(attempts),
            lease_expiry_count=sum(outcome == EXPIRED for _, outcome in attempts),
        ),
        attempts=[
            task_pb2.TaskAttempt(attempt=n, identity=identity, outcome=outcome)
            for n, (identity, outcome) in enumerate(attempts, 1)
        ],
    )


def clean_run() -> Run:
    table = [
        (10, "t00000", "CREATED", 0),
        (20, "t00000", "STARTED", 1),
        (30, "t00001", "CREATED", 0),
        (40, "t00000", "LEASE_EXPIRED", 1),
        (50, "t00000", "STARTED", 2),
        (55, "t00000", "PROGRESS", 2),
        (60, "t00000", "COMPLETED", 2),
        (61, "t00001", "UNBLOCKED", 0),
        (70, "t00001", "STARTED", 1),
        (80, "t00001", "COMPLETED", 1),
    ]
    return Run(
        fetched=[
            task("t00000", [("d01", EXPIRED), ("d02", COMPLETED)]),
            task("t00001", [("d02", COMPLETED)]),
        ],
        table=table,
        streamed=list(table),
        daemons=[
            Log("d01", killed=True, entries=[entry("claimed", "t00000", 1)]),
            Log(
                "d02",
                entries=[
                    entry("claimed", "t00000", 2),
                    entry("completed", "t00000", 2),
                    entry("claimed", "t00001", 1),
                    entry("completed", "t00001", 1),
                ],
            ),
        ],
    )


def failures(run: Run) -> Report:
    report = Report()
    settings = Settings(tasks=2, daemons=1, kills=1)
    check(report, settings, [[], [0]], {"t00001"}, run.fetched, run.table, run.streamed, run.daemons)
    return report


def test_a_clean_run_passes() -> None:
    report = failures(clean_run())

    assert report.failures == []
    assert (report.done, report.attempts, report.lease_expiries, report.killed_mid_task) == (2, 3, 1, 1)


def test_a_kill_just_after_a_committed_completion_is_no_violation_and_not_mid_task() -> None:
    run = clean_run()
    a_daemon_killed_after_its_completion_is_no_violation(run)

    report = failures(run)

    assert report.failures == []
    assert report.killed_mid_task == 1


def a_second_daemon_claims_the_same_attempt(run: Run) -> None:
    run.daemons.append(Log("d03", entries=[entry("claimed", "t00001", 1)]))


def a_dependent_starts_before_its_dependency_completes(run: Run) -> None:
    run.table[8] = (58, "t00001", "STARTED", 1)
    run.table.sort()
    run.streamed = list(run.table)


def a_task_completes_twice(run: Run) -> None:
    run.table.append((90, "t00001", "COMPLETED", 1))
    run.streamed = list(run.table)


def the_stream_misses_an_event(run: Run) -> None:
    del run.streamed[5]


def an_attempt_nobody_logged(run: Run) -> None:
    run.daemons[0].entries.clear()


def the_history_names_another_daemon(run: Run) -> None:
    run.fetched[1] = task("t00001", [("d01", COMPLETED)])


def a_killed_daemons_task_is_never_taken_over(run: Run) -> None:
    stuck = task("t00000", [("d01", task_pb2.ATTEMPT_OUTCOME_RUNNING)])
    stuck.task.status = task_pb2.TASK_STATUS_IN_PROGRESS
    run.fetched[0] = stuck


def a_daemon_killed_after_its_completion_is_no_violation(run: Run) -> None:
    run.daemons[1].killed = True  # its last claim, t00001 attempt 1, committed its completion


@pytest.mark.parametrize(
    "violate",
    [
        a_second_daemon_claims_the_same_attempt,
        a_dependent_starts_before_its_dependency_completes,
        a_task_completes_twice,
        the_stream_misses_an_event,
        an_attempt_nobody_logged,
        the_history_names_another_daemon,
        a_killed_daemons_task_is_never_taken_over,
    ],
)
def test_each_violation_is_reported(violate: Callable[[Run], None]) -> None:
    run = clean_run()
    violate(run)

    assert failures(run).failures
