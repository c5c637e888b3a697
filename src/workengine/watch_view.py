"""How `workengine watch` shows a stream: progress bars on a terminal, plain lines otherwise."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import json_format

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


def status_name(value: int) -> str:
    return task_pb2.TaskStatus.Name(value).removeprefix("TASK_STATUS_")


def kind_name(value: int) -> str:
    return task_pb2.TaskEventKind.Name(value).removeprefix("TASK_EVENT_KIND_")


def plain_line(event: task_pb2.TaskEvent) -> str:
    """One line per event, for logs and pipes."""
    task = event.task
    parts = [
        str(event.cursor),
        event.event_time.ToJsonString(),
        kind_name(event.kind),
        task.id,
        status_name(task.status),
        f"{task.progress}%",
    ]
    if event.message:
        parts.append(event.message)
    if event.metadata.fields:
        parts.append(json_format.MessageToJson(event.metadata, indent=None))
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
            progress=100 if task.status == task_pb2.TASK_STATUS_DONE else task.progress,
            message=event.message or task.progress_message,
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
