"""`workengine explain --orchestrator ID [--task ID ...]`: the ready tasks as the next claims
would take them, with their score parts, and why the named tasks are not first."""

from __future__ import annotations

import argparse
from typing import Any

from workengine.cli.connection import client_command
from workengine.cli.describe import priority_name
from workengine.cli.output import enum_name, enum_value, show, table
from workengine.cli.tasks import PRIORITIES
from workengine.client import WorkEngineClient
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb

TITLE_WIDTH = 40


def _cut(text: str, width: int = TITLE_WIDTH) -> str:
    line = text.strip().split("\n", 1)[0]
    return line if len(line) <= width else line[: width - 1].rstrip() + "…"


def _local_due(text: str) -> str:
    """2026-11-26T09:00:00-08:00 -> 2026-11-26 09:00:00-08:00 (the orchestrator's wall clock)."""
    return text.replace("T", " ", 1) if text else "-"


def ranking_table(explanation: pb.ExplainSelectionResponse) -> str:
    if not explanation.ranked:
        return "no ready task matches"
    rows = [
        [
            str(entry.rank),
            entry.task.id,
            _cut(entry.task.title),
            priority_name(entry.task.priority),
            str(entry.priority_weight),
            enum_name(pb.DeadlineBucket, entry.deadline_bucket, "DEADLINE_BUCKET_"),
            str(entry.deadline_boost),
            str(entry.score),
            _local_due(entry.local_due_time),
        ]
        for entry in explanation.ranked
    ]
    headers = ["RANK", "ID", "TITLE", "PRIORITY", "WEIGHT", "BUCKET", "BOOST", "SCORE", "DUE"]
    return table(headers, rows)


def reasons_table(explanation: pb.ExplainSelectionResponse) -> str:
    rows = [
        [
            answer.task_id,
            enum_name(pb.NotFirstReason, answer.reason, "NOT_FIRST_REASON_"),
            str(answer.rank) if answer.rank else "-",
            answer.detail,
        ]
        for answer in explanation.explained
    ]
    return table(["TASK", "REASON", "RANK", "WHY"], rows)


def explanation_text(explanation: pb.ExplainSelectionResponse) -> str:
    count = len(explanation.ranked)
    heading = (
        f"orchestrator {explanation.orchestrator_id} ({explanation.timezone}): "
        f"{count} ready task{'' if count == 1 else 's'} shown, in the order claims would take them"
    )
    parts = [heading, ranking_table(explanation)]
    if explanation.explained:
        parts += ["", reasons_table(explanation)]
    return "\n".join(parts)


def criteria(args: argparse.Namespace) -> task_pb2.SelectionCriteria:
    def priority(name: str | None) -> Any:
        return enum_value(task_pb2.TaskPriority, name, "TASK_PRIORITY_") if name else 0

    return task_pb2.SelectionCriteria(
        required_tags=args.tag or [],
        min_priority=priority(args.min_priority),
        max_priority=priority(args.max_priority),
        exclude_task_ids=args.exclude or [],
    )


def cmd_explain(client: WorkEngineClient, args: argparse.Namespace) -> None:
    explanation = client.explain_selection(
        args.orchestrator, criteria=criteria(args), limit=args.limit, task_ids=args.task or []
    )
    show(args, explanation, explanation_text(explanation))


def add_commands(commands: Any) -> None:
    """`explain`, on the top-level subparsers."""
    explain = client_command(
        commands, "explain", "why the next claim takes what it takes: the ranked ready tasks", cmd_explain
    )
    explain.add_argument("--orchestrator", required=True)
    explain.add_argument("--task", action="append", help="also say why this task is not first (repeatable)")
    explain.add_argument(
        "--limit", type=int, default=0, help="ranked tasks to show (default 20, at most 1000)"
    )
    explain.add_argument("--tag", action="append", help="criteria: only tasks with this tag (repeatable)")
    explain.add_argument("--min-priority", choices=PRIORITIES, help="criteria: only this priority or higher")
    explain.add_argument("--max-priority", choices=PRIORITIES, help="criteria: only this priority or lower")
    explain.add_argument("--exclude", action="append", help="criteria: never this task (repeatable)")
