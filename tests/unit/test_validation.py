"""Input limits: every refusal is an InvalidArgument naming the request field it is about."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workengine.domain import scoring, validation
from workengine.domain.errors import InvalidArgument
from workengine.domain.model import (
    Artifact,
    Charter,
    NewOrchestrator,
    NewTask,
    Priority,
    SelectionCriteria,
    TaskResult,
)


def new_task(**changes: Any) -> NewTask:
    base = NewTask(id="task-1", orchestrator_id="ada", workspace_id="ws", title="Write the report")
    return dataclasses.replace(base, **changes)


def new_orchestrator(**changes: Any) -> NewOrchestrator:
    base = NewOrchestrator(id="ada", display_name="Ada")
    return dataclasses.replace(base, **changes)


def refused_field(call: Any, *args: Any) -> str:
    with pytest.raises(InvalidArgument) as raised:
        call(*args)
    return raised.value.field


def json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def test_a_well_formed_task_is_accepted() -> None:
    validation.validate_new_task(
        new_task(
            channel_id="general",
            description="d" * validation.MAX_DESCRIPTION,
            tags=("a", "b"),
            depends_on=("task-0", "task-00"),
            metadata={"k": [1, 2, {"x": None}]},
        )
    )


def test_invalid_argument_carries_field_and_message() -> None:
    error = InvalidArgument("title", "is required")
    assert error.field == "title"
    assert error.message == "title: is required"


# --- required fields and ids ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": ""}, "task_id"),
        ({"orchestrator_id": ""}, "orchestrator_id"),
        ({"workspace_id": ""}, "workspace_id"),
        ({"title": ""}, "title"),
        ({"title": "   \t\n"}, "title"),
    ],
)
def test_required_task_fields(changes: dict[str, Any], field: str) -> None:
    assert refused_field(validation.validate_new_task, new_task(**changes)) == field


@pytest.mark.parametrize(
    "value",
    ["a", "A-z_0.9:x", "0" * 128, "550e8400-e29b-41d4-a716-446655440000", "urn:task:1"],
)
def test_ids_matching_the_pattern_are_accepted(value: str) -> None:
    assert validation.require_id("task_id", value) == value
    validation.validate_new_task(new_task(id=value))


@pytest.mark.parametrize(
    "value",
    ["0" * 129, "has space", "a/b", "a\\b", "naïve", "tab\t", "new\nline", "x\x00", "a,b", "a#b", "ä"],
)
def test_ids_outside_the_pattern_are_refused(value: str) -> None:
    assert refused_field(validation.require_id, "task_id", value) == "task_id"
    assert refused_field(validation.validate_new_task, new_task(id=value)) == "task_id"
    assert refused_field(validation.validate_new_task, new_task(orchestrator_id=value)) == "orchestrator_id"
    assert refused_field(validation.validate_new_task, new_task(workspace_id=value)) == "workspace_id"


def test_channel_id_is_optional_but_must_match_the_pattern() -> None:
    validation.validate_new_task(new_task(channel_id=""))
    assert validation.optional_id("channel_id", "") == ""
    assert refused_field(validation.validate_new_task, new_task(channel_id="bad id")) == "channel_id"


def test_new_id_is_a_valid_id() -> None:
    first, second = validation.new_id(), validation.new_id()
    assert validation.require_id("task_id", first) == first
    assert first != second


# --- text limits ----------------------------------------------------------------------------------


def test_title_length_limit() -> None:
    assert validation.MAX_TITLE == 500
    validation.validate_new_task(new_task(title="t" * 500))
    assert refused_field(validation.validate_new_task, new_task(title="t" * 501)) == "title"


def test_description_length_limit() -> None:
    assert validation.MAX_DESCRIPTION == 20_000
    validation.validate_new_task(new_task(description="d" * 20_000))
    assert refused_field(validation.validate_new_task, new_task(description="d" * 20_001)) == "description"


def test_limits_count_characters_not_bytes() -> None:
    validation.validate_new_task(new_task(title="é" * 500))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"title": "abc\x00def"}, "title"),
        ({"description": "\x00"}, "description"),
        ({"tags": ("ok", "b\x00d")}, "tags[1]"),
        ({"metadata": {"note": "nul \x00 here"}}, "metadata"),
        ({"metadata": {"k\x00": 1}}, "metadata"),
        ({"metadata": {"nested": [{"deep": "\x00"}]}}, "metadata"),
    ],
)
def test_nul_characters_are_refused(changes: dict[str, Any], field: str) -> None:
    assert refused_field(validation.validate_new_task, new_task(**changes)) == field


# --- tags -----------------------------------------------------------------------------------------


def test_tag_count_limit() -> None:
    assert validation.MAX_TAGS == 32
    validation.validate_new_task(new_task(tags=tuple(f"tag{i}" for i in range(32))))
    too_many = tuple(f"tag{i}" for i in range(33))
    assert refused_field(validation.validate_new_task, new_task(tags=too_many)) == "tags"


def test_due_times_from_the_undated_sentinel_on_are_refused() -> None:
    latest = scoring.UNDATED - timedelta(microseconds=1)
    validation.validate_new_task(new_task(due_at=latest))
    for due_at in (scoring.UNDATED, datetime.max.replace(tzinfo=UTC)):
        assert refused_field(validation.validate_new_task, new_task(due_at=due_at)) == "due_time"


def test_duplicate_tags_are_refused() -> None:
    assert refused_field(validation.validate_new_task, new_task(tags=("a", "b", "a"))) == "tags"


@pytest.mark.parametrize(
    ("tags", "field"),
    [
        (("ok", "t" * 65), "tags[1]"),
        (("",), "tags[0]"),
        (("a", "b", "  "), "tags[2]"),
    ],
)
def test_each_tag_is_checked(tags: tuple[str, ...], field: str) -> None:
    assert refused_field(validation.validate_new_task, new_task(tags=tags)) == field


def test_tag_length_limit_is_inclusive() -> None:
    validation.validate_new_task(new_task(tags=("t" * 64,)))


# --- dependencies ---------------------------------------------------------------------------------


def test_a_task_cannot_depend_on_itself() -> None:
    with pytest.raises(InvalidArgument) as raised:
        validation.validate_new_task(new_task(id="task-1", depends_on=("task-0", "task-1")))
    assert raised.value.field == "depends_on"
    assert "cycle" in raised.value.message


def test_duplicate_dependencies_are_refused() -> None:
    duplicated = new_task(depends_on=("task-a", "task-b", "task-a"))
    assert refused_field(validation.validate_new_task, duplicated) == "depends_on"


def test_dependency_count_limit() -> None:
    assert validation.MAX_DEPENDENCIES == 10_000
    validation.validate_new_task(new_task(depends_on=tuple(f"d{i}" for i in range(10_000))))
    too_many = new_task(depends_on=tuple(f"d{i}" for i in range(10_001)))
    assert refused_field(validation.validate_new_task, too_many) == "depends_on"


def test_each_dependency_must_be_an_id() -> None:
    assert (
        refused_field(validation.validate_new_task, new_task(depends_on=("ok", "not ok"))) == "depends_on[1]"
    )
    assert refused_field(validation.validate_new_task, new_task(depends_on=("",))) == "depends_on[0]"


# --- metadata -------------------------------------------------------------------------------------


def metadata_of_size(size: int) -> dict[str, Any]:
    overhead = json_size({"k": ""})
    value = {"k": "x" * (size - overhead)}
    assert json_size(value) == size
    return value


def test_metadata_size_limit() -> None:
    assert validation.MAX_METADATA_BYTES == 65_536
    validation.validate_new_task(new_task(metadata=metadata_of_size(65_536)))
    assert (
        refused_field(validation.validate_new_task, new_task(metadata=metadata_of_size(65_537))) == "metadata"
    )


def test_json_object_returns_the_value_it_accepts() -> None:
    value = {"a": 1}
    assert validation.json_object("metadata", value, 100) is value


def test_a_literal_backslash_u0000_is_not_a_nul_character() -> None:
    validation.json_object("metadata", {"path": "C:\\u0000"}, 1_000)


# --- orchestrators and timezones ------------------------------------------------------------------


def test_a_well_formed_orchestrator_is_accepted() -> None:
    validation.validate_new_orchestrator(
        new_orchestrator(
            role="writer",
            capabilities=("python",),
            timezone="America/New_York",
            charter=Charter(mission="m", values=("v",)),
        )
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": ""}, "orchestrator_id"),
        ({"display_name": " "}, "display_name"),
        ({"display_name": "d" * 201}, "display_name"),
        ({"role": "r" * 201}, "role"),
        ({"discipline": "x\x00"}, "discipline"),
        ({"capabilities": ("ok", "")}, "capabilities[1]"),
        ({"capabilities": tuple(f"c{i}" for i in range(65))}, "capabilities"),
        ({"daemon_endpoint": "h" * 2001}, "daemon_endpoint"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"charter": Charter(mission="m" * 4001)}, "charter.mission"),
        ({"charter": Charter(vision="v" * 4001)}, "charter.vision"),
        ({"charter": Charter(values=("",))}, "charter.values[0]"),
        ({"charter": Charter(expertise=tuple("e" for _ in range(65)))}, "charter.expertise"),
    ],
)
def test_orchestrator_fields(changes: dict[str, Any], field: str) -> None:
    assert refused_field(validation.validate_new_orchestrator, new_orchestrator(**changes)) == field


@pytest.mark.parametrize(
    "value", ["UTC", "America/New_York", "Asia/Kathmandu", "Pacific/Kiritimati", "Etc/GMT+5"]
)
def test_known_timezones_are_accepted(value: str) -> None:
    assert validation.timezone("timezone", value) == value


def test_an_empty_timezone_means_utc() -> None:
    assert validation.timezone("timezone", "") == "UTC"


@pytest.mark.parametrize(
    "value",
    [
        "Mars/Olympus_Mons",
        "Europe",  # a directory of the zone database
        "America/",
        "/etc/passwd",
        "../../etc/passwd",
        "UTC ",
        "utc/",
        "America/New York",
        "x" * 201,
        "UT\x00C",
    ],
)
def test_unknown_timezones_are_refused(value: str) -> None:
    assert refused_field(validation.timezone, "timezone", value) == "timezone"


# --- progress, attempt, page size -----------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 50, 99, 100])
def test_progress_in_range_is_accepted(value: int) -> None:
    assert validation.progress(value) == value


@pytest.mark.parametrize("value", [-1, 101, -100, 1000])
def test_progress_out_of_range_is_refused(value: int) -> None:
    assert refused_field(validation.progress, value) == "progress"


@pytest.mark.parametrize("value", [1, 2, 1_000_000])
def test_attempt_from_one_is_accepted(value: int) -> None:
    assert validation.attempt(value) == value


@pytest.mark.parametrize("value", [0, -1])
def test_attempt_below_one_is_refused(value: int) -> None:
    assert refused_field(validation.attempt, value) == "attempt"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 100), (1, 1), (100, 100), (999, 999), (1_000, 1_000)],
)
def test_page_size_defaults_and_accepts_up_to_the_maximum(value: int, expected: int) -> None:
    assert validation.page_size(value) == expected


@pytest.mark.parametrize("value", [1_001, 10**9])
def test_a_page_size_above_the_maximum_is_refused_naming_it(value: int) -> None:
    with pytest.raises(InvalidArgument, match=r"page_size: must be at most 1000"):
        validation.page_size(value)


def test_a_negative_page_size_is_refused() -> None:
    assert refused_field(validation.page_size, -1) == "page_size"


# --- task results ---------------------------------------------------------------------------------


def test_a_result_within_the_limits_is_accepted() -> None:
    validation.validate_result(
        TaskResult(
            output={"summary": "ok"},
            error="e" * validation.MAX_ERROR,
            artifacts=tuple(Artifact("log", "c") for _ in range(validation.MAX_ARTIFACTS)),
            metrics={"seconds": 1.5},
        )
    )
    validation.validate_result(TaskResult())


def test_result_output_limit_is_one_mebibyte() -> None:
    assert validation.MAX_RESULT_BYTES == 1_048_576
    validation.validate_result(TaskResult(output=metadata_of_size(1_048_576)))
    too_big = TaskResult(output=metadata_of_size(1_048_577))
    assert refused_field(validation.validate_result, too_big) == "result.output"


@pytest.mark.parametrize(
    ("result", "field"),
    [
        (TaskResult(error="e" * 8_001), "result.error"),
        (TaskResult(error="bad\x00"), "result.error"),
        (TaskResult(artifacts=tuple(Artifact("log", "") for _ in range(257))), "result.artifacts"),
        (TaskResult(artifacts=(Artifact("t" * 201, ""),)), "result.artifacts[0].type"),
        (
            TaskResult(artifacts=(Artifact("a", ""),) * 3 + (Artifact("log", "c" * (65_536 + 1)),)),
            "result.artifacts[3].content",
        ),
        (TaskResult(artifacts=(Artifact("log", "x\x00"),)), "result.artifacts[0].content"),
        (TaskResult(output={"o": "\x00"}), "result.output"),
        (TaskResult(metrics=metadata_of_size(65_537)), "result.metrics"),
        (TaskResult(metrics={"m": "\x00"}), "result.metrics"),
    ],
)
def test_result_limits(result: TaskResult, field: str) -> None:
    assert refused_field(validation.validate_result, result) == field


def test_artifact_content_limit_is_inclusive() -> None:
    validation.validate_result(TaskResult(artifacts=(Artifact("log", "c" * 65_536),)))
    validation.validate_result(TaskResult(metrics=metadata_of_size(65_536)))


def test_token_lifetimes_and_rotation_grace_are_bounded() -> None:
    assert validation.token_ttl("token_ttl", None) is None
    assert validation.token_ttl("token_ttl", timedelta(days=30)) == timedelta(days=30)
    for bad in (timedelta(0), timedelta(seconds=-1), timedelta(days=3651)):
        with pytest.raises(InvalidArgument, match=r"^token_ttl: "):
            validation.token_ttl("token_ttl", bad)
    assert validation.rotation_grace("previous_token_grace", None) == timedelta(0)
    assert validation.rotation_grace("previous_token_grace", timedelta(hours=1)) == timedelta(hours=1)
    for bad in (timedelta(seconds=-1), timedelta(days=31)):
        with pytest.raises(InvalidArgument, match=r"^previous_token_grace: "):
            validation.rotation_grace("previous_token_grace", bad)


# --- selection_criteria --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "criteria",
    [
        SelectionCriteria(),
        SelectionCriteria(min_priority=Priority.HIGH),
        SelectionCriteria(max_priority=Priority.LOW),
        SelectionCriteria(min_priority=Priority.MEDIUM, max_priority=Priority.MEDIUM),
        SelectionCriteria(min_priority=Priority.LOW, max_priority=Priority.CRITICAL),
        SelectionCriteria(required_tags=("a", "b"), exclude_task_ids=("t1", "t2")),
        SelectionCriteria(exclude_task_ids=tuple(f"t{i}" for i in range(1_000))),
    ],
)
def test_valid_criteria_are_accepted(criteria: SelectionCriteria) -> None:
    validation.selection_criteria(criteria)


@pytest.mark.parametrize(
    ("criteria", "field"),
    [
        (
            SelectionCriteria(min_priority=Priority.HIGH, max_priority=Priority.MEDIUM),
            "criteria.min_priority",
        ),
        (
            SelectionCriteria(min_priority=Priority.CRITICAL, max_priority=Priority.LOW),
            "criteria.min_priority",
        ),
        (SelectionCriteria(required_tags=tuple(f"t{i}" for i in range(33))), "criteria.required_tags"),
        (SelectionCriteria(required_tags=("ok", "")), "criteria.required_tags[1]"),
        (SelectionCriteria(required_tags=("t" * 65,)), "criteria.required_tags[0]"),
        (
            SelectionCriteria(exclude_task_ids=tuple(f"t{i}" for i in range(1_001))),
            "criteria.exclude_task_ids",
        ),
        (SelectionCriteria(exclude_task_ids=("ok", "not ok")), "criteria.exclude_task_ids[1]"),
    ],
)
def test_invalid_criteria_are_refused(criteria: SelectionCriteria, field: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        validation.selection_criteria(criteria)
    assert raised.value.field == field
