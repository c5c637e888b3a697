"""How `workengine watch` shows a stream: progress bars on a terminal, plain lines otherwise.
A finished (or BLOCKED) task shows its outcome, not its last progress message; a running one
the time left until its ETA ("~3 min left"), when the server estimated one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from workengine.cli.describe import FINISHED, activity, kind_name, outcome, shown_progress, status_name
from workengine.cli.output import compact
from workengine.v1 import task_pb2
from workengine.values import show_time_left

BAR_WIDTH = 24
TITLE_WIDTH = 28
# ANSI: cursor up n lines; clear to the end of the line.
_UP = "\x1b[{}F"
_CLEAR = "\x1b[K"


def progress_bar(percent: int, width: int = BAR_WIDTH) -> str:
    percent = max(0, min(100, percent))
    filled = round(width * percent / 100)
    return "[" + "#" * filled + "-" * (width - filled) + f"] {percent:3d}%"


def estimated_completion(event: task_pb2.TaskEvent) -> datetime | None:
    """The ETA an event shows: a progress report's own, or a snapshot's running task's. Other
    events have none to show: a new attempt starts without one, and the others end it."""
    task = event.task
    if task.status != task_pb2.TASK_STATUS_IN_PROGRESS:
        return None
    if event.kind == task_pb2.TASK_EVENT_KIND_PROGRESS:
        found = event.estimated_completion_time if event.HasField("estimated_completion_time") else None
    elif event.kind == task_pb2.TASK_EVENT_KIND_SNAPSHOT:
        found = task.estimated_completion_time if task.HasField("estimated_completion_time") else None
    else:
        return None
    return found.ToDatetime(tzinfo=UTC) if found is not None else None


def time_left(eta: datetime | None, now: datetime) -> str:
    """The time left from `now` until `eta`, as "~3 min left" (never negative); "" without one."""
    return show_time_left(eta - now) if eta is not None else ""


def plain_line(event: task_pb2.TaskEvent) -> str:
    """One line per event, for logs and pipes: cursor, time, kind, task, status, percent, the
    time left until the ETA in parentheses (when there is one), then the progress message (or
    a finished task's outcome) and the report's metadata. The time left is counted from the
    event's time, which the line shows: a replayed line reads as it did live."""
    task = event.task
    parts = [
        str(event.cursor),
        event.event_time.ToJsonString(),
        kind_name(event.kind),
        task.id,
        status_name(task.status),
        f"{shown_progress(task)}%",
    ]
    left = time_left(estimated_completion(event), event.event_time.ToDatetime(tzinfo=UTC))
    if left:
        parts.append(f"({left})")
    said = outcome(task, event.message) if task.status in FINISHED else event.message
    if said:
        parts.append(said)
    if event.metadata.fields:
        parts.append(compact(event.metadata))
    return " ".join(parts)


@dataclass
class _Row:
    title: str
    status: str
    progress: int
    message: str
    eta: datetime | None


class ProgressBoard:
    """One bar per task, redrawn in place; tasks keep the line they first appeared on. The time
    left until a running task's ETA is counted at each drawing, so it counts down between
    reports when the board is redrawn on a clock (see `ticking`)."""

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}
        self._drawn: list[str] = []

    def apply(self, event: task_pb2.TaskEvent) -> None:
        task = event.task
        self._rows[task.id] = _Row(
            title=task.title or task.id,
            status=status_name(task.status),
            progress=shown_progress(task),
            message=activity(task, event.message),
            eta=estimated_completion(event),
        )

    @property
    def ticking(self) -> bool:
        """Whether a drawing can change with nothing but the clock: some task has an ETA."""
        return any(r.eta is not None for r in self._rows.values())

    def lines(self, now: datetime | None = None) -> list[str]:
        """One line per task; `now` (default: the clock's) counts the time left."""
        now = now or datetime.now(UTC)
        left = {task_id: time_left(r.eta, now) for task_id, r in self._rows.items()}
        # As wide as the longest time left, so that the columns after it stay aligned; no
        # column at all while no task has an ETA.
        width = max(map(len, left.values()), default=0)
        return [
            f"{r.title[:TITLE_WIDTH]:<{TITLE_WIDTH}} {progress_bar(r.progress)} "
            + (f"{left[task_id]:<{width}} " if width else "")
            + f"{r.status:<11} {r.message}"
            for task_id, r in self._rows.items()
        ]

    def redraw(self, now: datetime | None = None, *, if_changed: bool = False) -> str:
        """The text that replaces the previous drawing with the current one; with `if_changed`,
        "" when it would look the same (a clock tick that moved no time left)."""
        lines = self.lines(now)
        if if_changed and lines == self._drawn:
            return ""
        moved = _UP.format(len(self._drawn)) if self._drawn else ""
        self._drawn = lines
        return moved + "".join(f"{line}{_CLEAR}\n" for line in lines)
