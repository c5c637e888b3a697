"""`workengine task ...`: create, get, list, cancel and retry tasks, and show their attempts."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from workengine.cli.arguments import timestamp
from workengine.cli.connection import client_command
from workengine.cli.describe import priority_name, shown_progress, state, status_name
from workengine.cli.output import compact, enum_name, enum_value, show, summary, table, when
from workengine.client import WorkEngineClient
from workengine.client.requests import TaskFields
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb

PRIORITIES = ("low", "medium", "high", "critical")
STATUSES = ("todo", "in_progress", "blocked", "done", "failed", "cancelled")


def task_summary(task: task_pb2.Task) -> str:
    """One task for a person: what it is, where it stands, what it ended with."""
    unmet = f" ({task.unmet_dependency_count} unmet)" if task.unmet_dependency_count else ""
    return summary(
        f"task {task.id}: {task.title}",
        [
            ("status", state(task)),
            ("about", _first_line(task.description)),
            ("orchestrator", task.orchestrator_id),
            ("workspace", task.workspace_id + (f" / {task.channel_id}" if task.channel_id else "")),
            ("priority", priority_name(task.priority)),
            ("due", when(task.due_time)),
            ("not before", when(task.not_before_time)),
            ("tags", ", ".join(task.tags)),
            ("depends on", ", ".join(task.depends_on) + unmet),
            ("attempts", _attempts(task)),
            ("lease until", when(task.lease_expire_time)),
            ("retry at", when(task.retry_time)),
            ("output", compact(task.result.output)),
            ("created", when(task.create_time)),
        ],
    )


def _first_line(text: str, width: int = 80) -> str:
    line = text.strip().split("\n", 1)[0]
    return line if len(line) <= width and line == text.strip() else line[: width - 1].rstrip() + "…"


def _attempts(task: task_pb2.Task) -> str:
    if not task.attempt:
        return ""
    failed = task.lease_expiry_count + task.failure_count
    return f"{task.attempt} started, {failed} failed of {task.max_attempts} allowed"


def task_table(tasks: Sequence[task_pb2.Task]) -> str:
    if not tasks:
        return "no tasks"
    rows = [
        [
            task.id,
            status_name(task.status),
            priority_name(task.priority),
            f"{shown_progress(task)}%",
            task.orchestrator_id,
            task.title,
        ]
        for task in tasks
    ]
    return table(["ID", "STATUS", "PRIORITY", "PROGRESS", "ORCHESTRATOR", "TITLE"], rows)


def attempt_table(attempts: Sequence[task_pb2.TaskAttempt]) -> str:
    if not attempts:
        return "no attempts yet"
    rows = [
        [
            str(attempt.attempt),
            attempt.identity or "-",
            when(attempt.start_time),
            when(attempt.end_time) or "-",
            enum_name(task_pb2.AttemptOutcome, attempt.outcome, "ATTEMPT_OUTCOME_") or "-",
            attempt.reason,
        ]
        for attempt in attempts
    ]
    return table(["ATTEMPT", "IDENTITY", "STARTED", "ENDED", "OUTCOME", "REASON"], rows)


def cmd_create(client: WorkEngineClient, args: argparse.Namespace) -> None:
    fields: TaskFields = {
        "task_id": args.id or "",
        "channel_id": args.channel or "",
        "description": args.description or "",
        "priority": enum_value(task_pb2.TaskPriority, args.priority, "TASK_PRIORITY_"),
        "tags": args.tag or [],
        "depends_on": args.depends_on or [],
    }
    if args.due:
        fields["due_time"] = args.due
    if args.not_before:
        fields["not_before"] = args.not_before
    task = client.create_task(args.orchestrator, args.workspace, args.title, **fields)
    show(args, task, task_summary(task))


def cmd_get(client: WorkEngineClient, args: argparse.Namespace) -> None:
    task = client.get_task(args.task_id)
    show(args, task, task_summary(task))


def cmd_attempts(client: WorkEngineClient, args: argparse.Namespace) -> None:
    attempts = client.get_task_attempts(args.task_id)
    show(args, pb.GetTaskResponse(attempts=attempts), attempt_table(attempts))


def cmd_retry(client: WorkEngineClient, args: argparse.Namespace) -> None:
    task = client.retry_task(args.task_id, max_attempts=args.max_attempts)
    show(args, task, task_summary(task))


def cmd_cancel(client: WorkEngineClient, args: argparse.Namespace) -> None:
    task = client.cancel_task(args.task_id, args.reason or "")
    show(args, task, task_summary(task))


def cmd_list(client: WorkEngineClient, args: argparse.Namespace) -> None:
    request = pb.ListTasksRequest(
        orchestrator_id=args.orchestrator or "",
        workspace_id=args.workspace or "",
        statuses=[enum_value(task_pb2.TaskStatus, s, "TASK_STATUS_") for s in args.status or []],
        tag=args.tag or "",
        page_size=args.page_size,
        page_token=args.page_token or "",
    )
    page: pb.ListTasksResponse = client.call("ListTasks", request)
    more = f"\nmore: --page-token {page.next_page_token}" if page.next_page_token else ""
    show(args, page, task_table(page.tasks) + more)


def add_commands(commands: Any) -> None:
    """`task` and its subcommands, on the top-level subparsers."""
    task = commands.add_parser("task", help="create, get, list, cancel and retry tasks").add_subparsers(
        dest="action", required=True
    )
    _add_create(task)
    client_command(task, "get", "show a task", cmd_get).add_argument("task_id")
    attempts = client_command(
        task, "attempts", "show every attempt of a task: who ran it, when, how it ended", cmd_attempts
    )
    attempts.add_argument("task_id")
    retry = client_command(task, "retry", "put a FAILED task back to TODO", cmd_retry)
    retry.add_argument("task_id")
    retry.add_argument(
        "--max-attempts", type=int, default=0, help="raise the task's attempt budget to this first"
    )
    cancel = client_command(task, "cancel", "cancel a task that has not finished", cmd_cancel)
    cancel.add_argument("task_id")
    cancel.add_argument("--reason", help="why, kept on the task and shown to watchers")
    listing = client_command(task, "list", "list tasks, oldest first, a page at a time", cmd_list)
    listing.add_argument("--orchestrator")
    listing.add_argument("--workspace")
    listing.add_argument("--status", action="append", choices=STATUSES, help="only these (repeatable)")
    listing.add_argument("--tag", help="only tasks with this tag")
    listing.add_argument("--page-size", type=int, default=50)
    listing.add_argument("--page-token", help="the next page, as the previous one said")


def _add_create(task: Any) -> None:
    create = client_command(task, "create", "create a task", cmd_create)
    create.add_argument("--orchestrator", required=True)
    create.add_argument("--workspace", required=True)
    create.add_argument("--title", required=True)
    create.add_argument("--id")
    create.add_argument("--channel")
    create.add_argument("--description")
    create.add_argument("--priority", default="medium", choices=PRIORITIES)
    create.add_argument("--due", type=timestamp, help="ISO 8601 time with zone")
    create.add_argument(
        "--not-before",
        type=timestamp,
        help="a scheduled start: not ready before this ISO 8601 time with zone",
    )
    create.add_argument("--tag", action="append")
    create.add_argument("--depends-on", action="append")
