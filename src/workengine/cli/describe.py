"""A task's state in words, shared by the task commands and `watch`."""

from __future__ import annotations

from workengine.cli.output import enum_name, seconds
from workengine.v1 import task_pb2

FINISHED = frozenset({task_pb2.TASK_STATUS_DONE, task_pb2.TASK_STATUS_FAILED, task_pb2.TASK_STATUS_CANCELLED})
SETTLED = FINISHED | {task_pb2.TASK_STATUS_BLOCKED}


def status_name(value: int) -> str:
    return enum_name(task_pb2.TaskStatus, value, "TASK_STATUS_")


def kind_name(value: int) -> str:
    return enum_name(task_pb2.TaskEventKind, value, "TASK_EVENT_KIND_")


def priority_name(value: int) -> str:
    return enum_name(task_pb2.TaskPriority, value, "TASK_PRIORITY_")


def shown_progress(task: task_pb2.Task) -> int:
    """The percent to show: a DONE task is complete whatever its last report said."""
    return 100 if task.status == task_pb2.TASK_STATUS_DONE else task.progress


def outcome(task: task_pb2.Task, reason: str = "") -> str:
    """How a finished or BLOCKED task stands: "done in 4.2s", "failed: boom", "cancelled: not
    needed", "blocked: waiting for 1 dependency"; "" for a task to do or running. `reason`:
    the event's message (a FAILED, CANCELLED or BLOCKED event's reason), if the task has none."""
    if task.status not in SETTLED:
        return ""
    return _phrase(status_name(task.status).lower(), task, _detail(task, reason))


def activity(task: task_pb2.Task, message: str = "") -> str:
    """What a task is up to: its outcome once finished or blocked, else the progress `message`
    (an event's, else the task's last) while IN_PROGRESS, else why it is back to TODO."""
    if task.status == task_pb2.TASK_STATUS_IN_PROGRESS:
        return message or task.progress_message
    return outcome(task, message) or message or task.status_reason


def state(task: task_pb2.Task) -> str:
    """The status and what matters about it: "IN_PROGRESS 40%: drafting", "DONE in 4.2s",
    "FAILED: boom", "TODO"."""
    name = status_name(task.status)
    if task.status in SETTLED:
        return _phrase(name, task, _detail(task, ""))
    if task.status == task_pb2.TASK_STATUS_IN_PROGRESS:
        name += f" {task.progress}%"
    return _phrase(name, task, activity(task))


def _phrase(word: str, task: task_pb2.Task, detail: str) -> str:
    if not detail:
        return word
    return f"{word} {detail}" if task.status == task_pb2.TASK_STATUS_DONE else f"{word}: {detail}"


def _detail(task: task_pb2.Task, reason: str) -> str:
    if task.status == task_pb2.TASK_STATUS_DONE:
        return _took(task)
    if task.status == task_pb2.TASK_STATUS_FAILED:
        return task.result.error or task.status_reason or reason
    if task.status == task_pb2.TASK_STATUS_CANCELLED:
        return task.status_reason or reason
    return task.status_reason or reason or _waiting(task)


def _took(task: task_pb2.Task) -> str:
    if not task.HasField("start_time") or not task.HasField("complete_time"):
        return ""
    took = task.complete_time.ToDatetime() - task.start_time.ToDatetime()
    return f"in {seconds(max(took.total_seconds(), 0.0))}"


def _waiting(task: task_pb2.Task) -> str:
    count = task.unmet_dependency_count
    return f"waiting for {count} dependenc{'y' if count == 1 else 'ies'}" if count else ""
