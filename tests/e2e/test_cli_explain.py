"""`workengine explain` as a user runs it against `workengine serve`: the table, the reasons,
the criteria flags, and JSON whose order the claims that follow keep."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tests.e2e.serving import WORKENGINE, ServeProcess, cli
from workengine.client import WorkEngineClient
from workengine.v1 import task_pb2


def run(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WORKENGINE, *args, "--target", target], capture_output=True, text=True, timeout=60, check=False
    )


def create(target: str, task_id: str, *more: str) -> None:
    cli(target, "task", "create", "--orchestrator", "ada", "--workspace", "ws", "--title", f"{task_id} title",
        "--id", task_id, *more)  # fmt: skip


def test_explain_prints_the_ranking_and_why_a_task_is_not_first(served: ServeProcess) -> None:
    target = served.target
    cli(target, "orchestrator", "register", "--name", "Ada", "--id", "ada",
        "--timezone", "America/Los_Angeles")  # fmt: skip
    # A due time 30 days ahead, on the hour, in the zone's winter or summer time alike.
    due = (datetime.now(UTC) + timedelta(days=30)).replace(minute=0, second=0, microsecond=0)
    create(target, "later-high", "--priority", "high", "--due", due.isoformat(), "--tag", "api")
    create(target, "overdue-medium", "--due", (datetime.now(UTC) - timedelta(hours=2)).isoformat())
    create(target, "undated-low", "--priority", "low")
    create(target, "waits", "--priority", "critical", "--depends-on", "undated-low")

    shown = run(target, "explain", "--orchestrator", "ada", "--task", "undated-low", "--task", "waits",
                "--task", "nope", "--limit", "2")  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == (
        "orchestrator ada (America/Los_Angeles): 2 ready tasks shown, in the order claims would take them"
    )
    assert lines[1].split() == [
        "RANK",
        "ID",
        "TITLE",
        "PRIORITY",
        "WEIGHT",
        "BUCKET",
        "BOOST",
        "SCORE",
        "DUE",
    ]
    local_due = due.astimezone(ZoneInfo("America/Los_Angeles")).isoformat(" ")
    # Both score 100: the overdue MEDIUM one (10 x 10) goes first, by its earlier due time. (The
    # title, "<id> title", is two words: columns 2 and 3.)
    first, second = lines[2].split(), lines[3].split()
    assert first[:2] == ["1", "overdue-medium"] and first[4:9] == ["MEDIUM", "10", "OVERDUE", "10", "100"]
    assert second[:2] == ["2", "later-high"] and second[4:9] == ["HIGH", "100", "LATER", "1", "100"]
    assert lines[3].endswith(local_due), (lines[3], local_due)
    reasons = lines[5:]
    assert reasons[0].split() == ["TASK", "REASON", "RANK", "WHY"]
    assert reasons[1].split()[:3] == ["undated-low", "RANKED", "3"]
    assert reasons[2].split()[:3] == ["waits", "BLOCKED", "-"]
    assert reasons[2].endswith("waits on 1 unfinished dependency: undated-low")
    assert reasons[3].split()[:2] == ["nope", "NOT_FOUND"]

    filtered = run(target, "explain", "--orchestrator", "ada", "--tag", "api", "--task", "undated-low")
    assert filtered.stdout.splitlines()[2].split()[:2] == ["1", "later-high"]
    assert "FILTERED" in filtered.stdout and "lacks criteria.required_tags api" in filtered.stdout

    none = run(target, "explain", "--orchestrator", "ada", "--min-priority", "critical")
    assert none.stdout.splitlines()[1] == "no ready task matches"

    unknown = run(target, "explain", "--orchestrator", "bob")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "error: NOT_FOUND: orchestrator_id: orchestrator bob not found"


def test_explain_json_is_the_order_the_claims_then_take(served: ServeProcess) -> None:
    target = served.target
    cli(
        target, "orchestrator", "register", "--name", "Ada", "--id", "ada", "--timezone", "Pacific/Kiritimati"
    )
    now = datetime.now(UTC)
    for index, (priority, hours) in enumerate(
        [("low", None), ("high", -3), ("medium", 5), ("critical", 100), ("high", 30), ("medium", None)]
    ):
        due = ["--due", (now + timedelta(hours=hours)).isoformat()] if hours is not None else []
        create(target, f"t{index}", "--priority", priority, *due)

    explained = cli(target, "explain", "--orchestrator", "ada", "--exclude", "t5", "--max-priority", "high")
    ranked = [entry["task"]["id"] for entry in explained["ranked"]]
    assert explained["timezone"] == "Pacific/Kiritimati" and [e["rank"] for e in explained["ranked"]] == [
        1,
        2,
        3,
        4,
    ]
    criteria = task_pb2.SelectionCriteria(exclude_task_ids=["t5"], max_priority=task_pb2.TASK_PRIORITY_HIGH)
    with WorkEngineClient(target) as client:
        claimed = []
        while (claim := client.claim_next_task("ada", criteria=criteria)).HasField("context"):
            claimed.append(claim.context.task.id)
    assert claimed == ranked and sorted(ranked) == ["t0", "t1", "t2", "t4"]
