"""How `workengine watch` shows a stream: progress bars on a terminal, plain lines otherwise.
A finished (or BLOCKED) task shows its outcome, not its last progress message."""

from __future__ import annotations

from dataclasses import dataclass

from workengine.cli.describe import FINISHED, activity, kind_name, outcome, shown_progress, status_name
from workengine.cli.output import compact
from workengine.v1 import task_pb2

BAR_WIDTH = 24
TITLE_WIDTH = 28
# ANSI: cursor up n lines; clear to the end of the line.
_UP = "\x1b[{}F"
_CLEAR = "\x1b[K"


def progress_bar(percent: int, width: int = BAR_WIDTH) -> str:
    percent = max(0, min(100, percent))
    filled = round(width * percent / 100)
    return "[" + "#" * filled + "-" * (width - filled) + f"] {percent:3d}%"


def plain_line(event: task_pb2.TaskEvent) -> str:
    """One line per event, for logs and pipes: cursor, time, kind, task, status, percent, then
    the progress message (or a finished task's outcome) and the report's metadata."""
    task = event.task
    parts = [
        str(event.cursor),
        event.event_time.ToJsonString(),
        kind_name(event.kind),
        task.id,
        status_name(task.status),
        f"{shown_progress(task)}%",
    ]
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


class ProgressBoard:
    """One bar per task, redrawn in place; tasks keep the line they first appeared on."""

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}
        self._drawn = 0

    def apply(self, event: task_pb2.TaskEvent) -> None:
        task = event.task
        self._rows[task.id] = _Row(
            title=task.title or task.id,
            status=status_name(task.status),
            progress=shown_progress(task),
            message=activity(task, event.message),
        )

    def lines(self) -> list[str]:
        return [
            f"{r.title[:TITLE_WIDTH]:<{TITLE_WIDTH}} {progress_bar(r.progress)} {r.status:<11} {r.message}"
            for r in self._rows.values()
        ]

    def redraw(self) -> str:
        """The text that replaces the previous drawing with the current one."""
        lines = self.lines()
        moved = _UP.format(self._drawn) if self._drawn else ""
        self._drawn = len(lines)
        return moved + "".join(f"{line}{_CLEAR}\n" for line in lines)
