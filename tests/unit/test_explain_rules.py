"""ExplainSelection's pure rules: which criterion filters a task, why a task is no candidate,
how ranks read, how far ranks are counted, the request checks; and every reason and bucket has
its proto value."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from workengine.api import convert
from workengine.domain import explain, validation
from workengine.domain.errors import InvalidArgument
from workengine.domain.explain import Explanation, NotFirst, NotFirstReason, RankedTask
from workengine.domain.model import Priority, SelectionCriteria, Task, TaskStatus
from workengine.domain.scoring import DEADLINE_BUCKETS
from workengine.v1 import work_engine_service_pb2 as pb


def task(**fields: object) -> Task:
    values: dict[str, object] = {"id": "t1", "orchestrator_id": "ada", "workspace_id": "ws", "title": "t"}
    values.update(fields)
    return Task(**values)  # type: ignore[arg-type]


def test_the_first_criterion_that_excludes_a_task_is_named() -> None:
    tagged = task(priority=Priority.LOW, tags=("api",))
    assert explain.filtered_by(tagged, SelectionCriteria()) == ""
    assert explain.filtered_by(tagged, SelectionCriteria(required_tags=("api",))) == ""
    assert explain.filtered_by(
        tagged, SelectionCriteria(exclude_task_ids=("t1",), min_priority=Priority.HIGH)
    ) == ("excluded by criteria.exclude_task_ids")
    assert explain.filtered_by(tagged, SelectionCriteria(min_priority=Priority.MEDIUM)) == (
        "priority LOW is below criteria.min_priority MEDIUM"
    )
    assert explain.filtered_by(
        task(priority=Priority.CRITICAL), SelectionCriteria(max_priority=Priority.HIGH)
    ) == ("priority CRITICAL is above criteria.max_priority HIGH")
    assert explain.filtered_by(tagged, SelectionCriteria(required_tags=("ops", "api", "ops", "docs"))) == (
        "lacks criteria.required_tags ops, docs"
    )


def test_why_a_task_is_no_candidate() -> None:
    def reason(candidate: Task, unmet: tuple[str, ...] = ()) -> explain.NotFirst | None:
        return explain.not_candidate(candidate, unmet, "ada", "Asia/Tokyo")

    assert reason(task()) is None
    assert reason(task(orchestrator_id="bob", status=TaskStatus.DONE)) == explain.NotFirst(
        "t1", NotFirstReason.OTHER_ORCHESTRATOR, detail="assigned to another orchestrator"
    )
    running = reason(task(status=TaskStatus.IN_PROGRESS, attempt=2))
    assert running is not None and (running.reason, running.attempt) == (NotFirstReason.IN_PROGRESS, 2)
    waiting = reason(task(status=TaskStatus.BLOCKED, unmet_dependency_count=3), ("a", "b"))
    assert waiting is not None and waiting.blocked_on == ("a", "b")
    assert waiting.detail == "waits on 3 unfinished dependencies (the first 2): a, b"
    retry_at = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    reported = reason(task(status=TaskStatus.BLOCKED, status_reason="vendor", retry_at=retry_at))
    assert reported is not None and reported.reason is NotFirstReason.BLOCKED and not reported.blocked_on
    assert reported.detail == "reported BLOCKED: vendor; back to TODO at 2026-12-02T00:00:00+09:00"
    forever = reason(task(status=TaskStatus.BLOCKED))
    assert forever is not None and forever.detail == "reported BLOCKED; BLOCKED until cancelled"
    for status in (TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED):
        finished = reason(task(status=status, status_reason="why"))
        assert finished is not None and finished.reason is NotFirstReason.FINISHED
        assert finished.detail == f"finished {status.value}: why"


def test_ranks_read_as_sentences_and_counting_shares_its_budget() -> None:
    assert explain.ranked_at("t", 1, 100).detail == "first: a claim now would start it (score 100)"
    assert explain.ranked_at("t", 2).detail == "ranked 2: a claim would start 1 other task first"
    assert explain.ranked_at("t", 0, 5, counted=1000).detail == (
        "ready (score 5), but at least 1000 ready tasks rank ahead of it (counting stops there)"
    )
    assert explain.rank_count_limit(1) == explain.rank_count_limit(10) == 10_000
    assert explain.rank_count_limit(100) == 1_000


def test_the_request_checks_name_the_field() -> None:
    assert validation.explain_limit(0) == 20
    assert validation.explain_limit(1000) == 1000
    for bad in (-1, 1001):
        with pytest.raises(InvalidArgument) as raised:
            validation.explain_limit(bad)
        assert raised.value.field == "limit"
    assert validation.explain_task_ids(["a"] * 100) == ("a",) * 100
    with pytest.raises(InvalidArgument) as raised:
        validation.explain_task_ids(["a"] * 101)
    assert raised.value.field == "task_ids"
    with pytest.raises(InvalidArgument) as raised:
        validation.explain_task_ids(["a", "b c"])
    assert raised.value.field == "task_ids[1]"


def test_every_reason_and_deadline_bucket_has_its_proto_value() -> None:
    ranked = tuple(
        RankedTask(rank, task(id=f"t{rank}"), 10 * boost, 10, bucket, boost, None)
        for rank, (boost, bucket) in enumerate(DEADLINE_BUCKETS.items(), start=1)
    )
    explained = tuple(NotFirst("t", reason) for reason in NotFirstReason)
    response = convert.explanation_out(Explanation("ada", "UTC", ranked, explained))
    assert [pb.DeadlineBucket.Name(e.deadline_bucket) for e in response.ranked] == [
        f"DEADLINE_BUCKET_{bucket}" for bucket in DEADLINE_BUCKETS.values()
    ]
    assert [pb.NotFirstReason.Name(a.reason) for a in response.explained] == [
        f"NOT_FIRST_REASON_{reason.value}" for reason in NotFirstReason
    ]
    assert all(e.local_due_time == "" for e in response.ranked)
