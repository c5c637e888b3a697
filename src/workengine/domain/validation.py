"""Input limits and the checks of every request, named after what they check. Each failure
names the request field it is about; the use cases call them before anything else."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from workengine.domain import attempts, history, scoring
from workengine.domain.errors import InvalidArgument
from workengine.domain.model import (
    CompletionStatus,
    JsonObject,
    NewOrchestrator,
    NewTask,
    OrchestratorStatus,
    SelectionCriteria,
    TaskResult,
)

ID_PATTERN = re.compile(r"\A[A-Za-z0-9._:\-]{1,128}\Z")  # \Z: "$" would let "id\n" through
MAX_TITLE = 500
MAX_DESCRIPTION = 20_000
MAX_SHORT_TEXT = 200
MAX_LONG_TEXT = 4_000
MAX_URI = 2_000
MAX_MESSAGE = 2_000
MAX_ERROR = 8_000
MAX_LIST_ITEMS = 64
MAX_TAGS = 32
MAX_TAG_LENGTH = 64
MAX_DEPENDENCIES = 10_000
MAX_EXCLUDED_IDS = 1_000
MAX_METADATA_BYTES = 64 * 1024
MAX_RESULT_BYTES = 1024 * 1024
MAX_ARTIFACTS = 256
MAX_ARTIFACT_CONTENT = 64 * 1024
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1_000
DEFAULT_EXPLAIN_LIMIT = 20
MAX_EXPLAIN_LIMIT = 1_000
MAX_EXPLAIN_TASK_IDS = 100
MIN_BOOKMARK = timedelta(seconds=1)
MAX_BOOKMARK = timedelta(hours=1)
MAX_TOKEN_TTL = timedelta(days=3650)
MAX_ROTATION_GRACE = timedelta(days=30)


def new_id() -> str:
    return str(uuid.uuid4())


def require_id(field: str, value: str) -> str:
    if not value:
        raise InvalidArgument(field, "is required")
    if not ID_PATTERN.match(value):
        raise InvalidArgument(field, "must be 1-128 characters of [A-Za-z0-9._:-]")
    return value


def optional_id(field: str, value: str) -> str:
    return require_id(field, value) if value else ""


def text(field: str, value: str, limit: int, *, required: bool = False) -> str:
    if required and not value.strip():
        raise InvalidArgument(field, "is required")
    if len(value) > limit:
        raise InvalidArgument(field, f"is longer than {limit} characters")
    if "\x00" in value:
        raise InvalidArgument(field, "must not contain NUL characters")
    return value


def text_list(field: str, values: Sequence[str], max_items: int, max_length: int) -> tuple[str, ...]:
    if len(values) > max_items:
        raise InvalidArgument(field, f"has more than {max_items} entries")
    for index, value in enumerate(values):
        text(f"{field}[{index}]", value, max_length, required=True)
    return tuple(values)


def _contains_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False


def json_object(field: str, value: JsonObject, limit: int) -> JsonObject:
    encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if len(encoded.encode()) > limit:
        raise InvalidArgument(field, f"is larger than {limit} bytes as JSON")
    # PostgreSQL's jsonb cannot store U+0000.
    if _contains_nul(value):
        raise InvalidArgument(field, "must not contain NUL characters")
    return value


def timezone(field: str, value: str) -> str:
    if not value:
        return "UTC"
    text(field, value, MAX_SHORT_TEXT)
    try:
        ZoneInfo(value)
    # A directory of the zone database ("Europe") or an unreadable name raises OSError.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidArgument(field, f"unknown IANA time zone {value!r}") from None
    return value


def page_size(value: int) -> int:
    if value < 0:
        raise InvalidArgument("page_size", "must not be negative")
    if value == 0:
        return DEFAULT_PAGE_SIZE
    if value > MAX_PAGE_SIZE:
        raise InvalidArgument("page_size", f"must be at most {MAX_PAGE_SIZE}")
    return value


def progress(value: int) -> int:
    if not 0 <= value <= 100:
        raise InvalidArgument("progress", "must be between 0 and 100 inclusive")
    return value


def attempt(value: int) -> int:
    if value < 1:
        raise InvalidArgument("attempt", "is required: pass the attempt returned when the task was started")
    return value


def duration_between(field: str, value: timedelta | None, low: timedelta, high: timedelta) -> None:
    if value is not None and not low <= value <= high:
        raise InvalidArgument(field, f"must be between {_spoken(low)} and {_spoken(high)}")


def _spoken(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("days", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def lease(field: str, value: timedelta | None) -> None:
    duration_between(field, value, attempts.MIN_LEASE, attempts.MAX_LEASE)


def max_attempts(value: int, *, optional: bool = False) -> None:
    if optional and value == 0:
        return
    if not 1 <= value <= attempts.MAX_ATTEMPTS_LIMIT:
        raise InvalidArgument("max_attempts", f"must be between 1 and {attempts.MAX_ATTEMPTS_LIMIT}")


def validate_new_task(task: NewTask) -> None:
    require_id("task_id", task.id)
    require_id("orchestrator_id", task.orchestrator_id)
    require_id("workspace_id", task.workspace_id)
    optional_id("channel_id", task.channel_id)
    text("title", task.title, MAX_TITLE, required=True)
    text("description", task.description, MAX_DESCRIPTION)
    tags = text_list("tags", task.tags, MAX_TAGS, MAX_TAG_LENGTH)
    if len(set(tags)) != len(tags):
        raise InvalidArgument("tags", "contains duplicates")
    if len(task.depends_on) > MAX_DEPENDENCIES:
        raise InvalidArgument("depends_on", f"has more than {MAX_DEPENDENCIES} entries")
    for index, dependency in enumerate(task.depends_on):
        require_id(f"depends_on[{index}]", dependency)
    if len(set(task.depends_on)) != len(task.depends_on):
        raise InvalidArgument("depends_on", "contains duplicates")
    if task.id in task.depends_on:
        raise InvalidArgument("depends_on", "a task cannot depend on itself (cycle)")
    if task.due_at is not None and task.due_at >= scoring.UNDATED:
        raise InvalidArgument("due_time", f"must be before {scoring.UNDATED.isoformat()}")
    if task.not_before is not None and task.not_before >= scoring.UNDATED:
        raise InvalidArgument("not_before", f"must be before {scoring.UNDATED.isoformat()}")
    json_object("metadata", task.metadata, MAX_METADATA_BYTES)
    max_attempts(task.max_attempts)
    lease("lease_duration", task.lease)
    text("idempotency_key", task.idempotency_key, MAX_SHORT_TEXT)


def validate_new_orchestrator(orchestrator: NewOrchestrator) -> None:
    require_id("orchestrator_id", orchestrator.id)
    text("display_name", orchestrator.display_name, MAX_SHORT_TEXT, required=True)
    text("role", orchestrator.role, MAX_SHORT_TEXT)
    text("discipline", orchestrator.discipline, MAX_SHORT_TEXT)
    text_list("capabilities", orchestrator.capabilities, MAX_LIST_ITEMS, MAX_SHORT_TEXT)
    text("daemon_endpoint", orchestrator.daemon_endpoint, MAX_URI)
    timezone("timezone", orchestrator.timezone)
    charter = orchestrator.charter
    text("charter.mission", charter.mission, MAX_LONG_TEXT)
    text("charter.vision", charter.vision, MAX_LONG_TEXT)
    text_list("charter.values", charter.values, MAX_LIST_ITEMS, MAX_SHORT_TEXT)
    text_list("charter.expertise", charter.expertise, MAX_LIST_ITEMS, MAX_SHORT_TEXT)


def validate_result(result: TaskResult) -> None:
    text("result.error", result.error, MAX_ERROR)
    if len(result.artifacts) > MAX_ARTIFACTS:
        raise InvalidArgument("result.artifacts", f"has more than {MAX_ARTIFACTS} entries")
    for index, artifact in enumerate(result.artifacts):
        text(f"result.artifacts[{index}].type", artifact.type, MAX_SHORT_TEXT)
        text(f"result.artifacts[{index}].content", artifact.content, MAX_ARTIFACT_CONTENT)
    json_object("result.output", result.output, MAX_RESULT_BYTES)
    json_object("result.metrics", result.metrics, MAX_METADATA_BYTES)
    lessons(result.lessons)


def lessons(values: Sequence[str]) -> None:
    if len(values) > history.MAX_LESSONS:
        raise InvalidArgument("result.lessons", f"has more than {history.MAX_LESSONS} entries")
    for index, lesson in enumerate(values):
        text(f"result.lessons[{index}]", lesson, history.MAX_LESSON_LENGTH, required=True)


def history_limit(value: int | None) -> int:
    """A context request's history_limit: unset means the default, 0 none."""
    if value is None:
        return history.DEFAULT_HISTORY_LIMIT
    if not 0 <= value <= history.MAX_HISTORY_LIMIT:
        raise InvalidArgument("history_limit", f"must be between 0 and {history.MAX_HISTORY_LIMIT}")
    return value


def selection_criteria(criteria: SelectionCriteria) -> None:
    text_list("criteria.required_tags", criteria.required_tags, MAX_TAGS, MAX_TAG_LENGTH)
    if len(criteria.exclude_task_ids) > MAX_EXCLUDED_IDS:
        raise InvalidArgument("criteria.exclude_task_ids", f"has more than {MAX_EXCLUDED_IDS} entries")
    for index, task_id in enumerate(criteria.exclude_task_ids):
        require_id(f"criteria.exclude_task_ids[{index}]", task_id)
    low, high = criteria.min_priority, criteria.max_priority
    if low is not None and high is not None and low > high:
        raise InvalidArgument("criteria.min_priority", "is above criteria.max_priority")


def explain_limit(value: int) -> int:
    """ExplainSelection's `limit`: 0 means the default."""
    if value < 0:
        raise InvalidArgument("limit", "must not be negative")
    if value == 0:
        return DEFAULT_EXPLAIN_LIMIT
    if value > MAX_EXPLAIN_LIMIT:
        raise InvalidArgument("limit", f"must be at most {MAX_EXPLAIN_LIMIT}")
    return value


def explain_task_ids(task_ids: Sequence[str]) -> tuple[str, ...]:
    if len(task_ids) > MAX_EXPLAIN_TASK_IDS:
        raise InvalidArgument("task_ids", f"has more than {MAX_EXPLAIN_TASK_IDS} entries")
    for index, task_id in enumerate(task_ids):
        require_id(f"task_ids[{index}]", task_id)
    return tuple(task_ids)


def start_options(lease_duration: timedelta | None, identity: str) -> None:
    """What a start (ClaimNextTask, ExecuteTask) asks for: a lease length and who starts."""
    lease("lease_duration", lease_duration)
    text("identity", identity, MAX_SHORT_TEXT)


def claim_wait(wait: timedelta | None) -> None:
    if wait is not None and wait < timedelta(0):
        raise InvalidArgument("wait", "must not be negative")


def completion(
    status: CompletionStatus | None, result: TaskResult, retry_after: timedelta | None
) -> CompletionStatus:
    """A CompleteTask's report; returns its status, which is required."""
    if status is None:
        raise InvalidArgument("status", "is required: COMPLETED, FAILED or BLOCKED")
    validate_result(result)
    if retry_after is not None and status is not CompletionStatus.BLOCKED:
        raise InvalidArgument("retry_after", "is only allowed with status BLOCKED")
    duration_between("retry_after", retry_after, attempts.MIN_RETRY_AFTER, attempts.MAX_RETRY_AFTER)
    return status


def orchestrator_status(status: OrchestratorStatus | None) -> OrchestratorStatus:
    if status is None:
        raise InvalidArgument("status", "is required")
    return status


def stats_period(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end <= start:
        raise InvalidArgument("end_time", "must be after start_time")


def watch_request(
    task_id: str,
    orchestrator_id: str,
    workspace_id: str,
    after_cursor: int,
    bookmark: timedelta | None,
    everything: bool = False,
) -> None:
    """A watch names exactly one target by a valid id, or none when it watches `everything`
    (the dashboard's overview); `bookmark` is its bookmark_interval."""
    if bookmark is not None and not MIN_BOOKMARK <= bookmark <= MAX_BOOKMARK:
        raise InvalidArgument("bookmark_interval", "must be between 1 second and 1 hour")
    targets = {"task_id": task_id, "orchestrator_id": orchestrator_id, "workspace_id": workspace_id}
    chosen = [(field, value) for field, value in targets.items() if value]
    if len(chosen) != (0 if everything else 1):
        raise InvalidArgument("target", "set exactly one of task_id, orchestrator_id, workspace_id")
    if after_cursor < 0:
        raise InvalidArgument("after_cursor", "must not be negative")
    if chosen:
        require_id(*chosen[0])


def token_ttl(field: str, value: timedelta | None) -> timedelta | None:
    """A token lifetime from a request: unset means the token does not expire."""
    if value is None:
        return None
    if value <= timedelta(0):
        raise InvalidArgument(field, "must be positive")
    if value > MAX_TOKEN_TTL:
        raise InvalidArgument(field, f"must be at most {MAX_TOKEN_TTL.days} days")
    return value


def rotation_grace(field: str, value: timedelta | None) -> timedelta:
    """How long tokens replaced by a rotation keep working: unset or 0 revokes them at once."""
    if value is None:
        return timedelta(0)
    if value < timedelta(0):
        raise InvalidArgument(field, "must not be negative")
    if value > MAX_ROTATION_GRACE:
        raise InvalidArgument(field, f"must be at most {MAX_ROTATION_GRACE.days} days")
    return value
