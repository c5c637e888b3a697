"""`workengine stats --orchestrator ID`: how an orchestrator's tasks went."""

from __future__ import annotations

import argparse
from typing import Any

from workengine.cli.arguments import moment
from workengine.cli.connection import client_command
from workengine.cli.describe import priority_name, status_name
from workengine.cli.output import seconds, show, summary
from workengine.client import WorkEngineClient
from workengine.v1 import work_engine_service_pb2 as pb


def stats_summary(orchestrator_id: str, stats: pb.GetExecutionStatsResponse) -> str:
    finished = stats.completed_tasks + stats.failed_tasks
    times = (
        f"avg {seconds(stats.average_completion_seconds)}, p50 {seconds(stats.p50_completion_seconds)}, "
        f"p95 {seconds(stats.p95_completion_seconds)}"
        if stats.completed_tasks
        else ""
    )
    return summary(
        f"orchestrator {orchestrator_id}: {stats.total_tasks} task{'' if stats.total_tasks == 1 else 's'}",
        [
            ("done", str(stats.completed_tasks)),
            ("failed", str(stats.failed_tasks)),
            ("success rate", f"{stats.success_rate_percent:.1f}%" if finished else "-"),
            ("completion", times),
            ("by status", ", ".join(f"{status_name(c.status)} {c.count}" for c in stats.by_status)),
            ("by priority", ", ".join(f"{priority_name(c.priority)} {c.count}" for c in stats.by_priority)),
        ],
    )


def cmd_stats(client: WorkEngineClient, args: argparse.Namespace) -> None:
    stats = client.get_execution_stats(args.orchestrator, start_time=args.since, end_time=args.until)
    show(args, stats, stats_summary(args.orchestrator, stats))


def add_commands(commands: Any) -> None:
    """`stats`, on the top-level subparsers."""
    stats = client_command(
        commands,
        "stats",
        "an orchestrator's tasks: counts, success rate, completion times (mean, p50, p95)",
        cmd_stats,
    )
    stats.add_argument("--orchestrator", required=True)
    stats.add_argument(
        "--since",
        type=moment,
        help="only tasks created since: an ISO 8601 time with zone, or an age like 24h or 7d",
    )
    stats.add_argument("--until", type=moment, help="only tasks created before this (same forms as --since)")
