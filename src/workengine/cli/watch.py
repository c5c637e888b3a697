"""`workengine watch`: follow task progress live; bars on a terminal, lines otherwise, JSON
lines with --output json. Reconnects from its last cursor when the server restarts."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from types import TracebackType
from typing import Any

from workengine.cli.connection import client_command
from workengine.cli.describe import kind_name
from workengine.cli.output import JSON, as_json, enum_value
from workengine.cli.watch_view import ProgressBoard, plain_line
from workengine.client import Unavailable, WorkEngineClient
from workengine.v1 import task_pb2

# How long `watch` keeps reconnecting to an unavailable server before it gives up.
WATCH_RECONNECT_SECONDS = 30.0
# Keeps the resume cursor fresh on a quiet watch, so a reconnect never finds it pruned.
WATCH_BOOKMARK = timedelta(seconds=60)

# How often a board with an ETA on it is checked between events, and redrawn when a time left
# moved, so that its "~40 s left" counts down instead of standing still until the next report.
# Twice a second: a once-a-second clock drifting against the seconds shown would skip one.
TICK_SECONDS = 0.5

Show = Callable[[task_pb2.TaskEvent], None]


class Printer:
    """How each event is shown: a JSON line, a redrawn board of bars, or a plain line. A board
    is also redrawn on a clock (a thread, while the stream blocks) whenever that changes a time
    left; use it as a context manager, which stops the clock."""

    def __init__(self, args: argparse.Namespace, tick: float = TICK_SECONDS) -> None:
        self._json = args.output == JSON
        self._bars = not self._json and (sys.stdout.isatty() if args.bars is None else args.bars)
        self._board = ProgressBoard()
        self._lock = threading.Lock()  # the stream's drawings and the clock's, one at a time
        self._stopped = threading.Event()
        self._clock = threading.Thread(target=self._tick, args=(tick,), name="watch-clock", daemon=True)

    def __enter__(self) -> Printer:
        if self._bars:
            self._clock.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stopped.set()
        if self._clock.is_alive():
            self._clock.join()

    def __call__(self, event: task_pb2.TaskEvent) -> None:
        if self._json:
            _write(as_json(event, indent=None) + "\n")
        elif self._bars:
            with self._lock:
                self._board.apply(event)
                _write(self._board.redraw())
        else:
            _write(plain_line(event) + "\n")

    def _tick(self, every: float) -> None:
        while not self._stopped.wait(every):
            with self._lock:
                if self._board.ticking:
                    _write(self._board.redraw(if_changed=True))


def _write(text: str) -> None:
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


def follow(client: WorkEngineClient, args: argparse.Namespace, show: Show) -> None:
    """Shows every event until the stream ends. A server restarting (or shutting down) ends
    streams with UNAVAILABLE: this resumes after the last cursor, so nothing is missed or shown
    twice, for WATCH_RECONNECT_SECONDS before giving up."""
    cursor = args.after_cursor
    kinds = [enum_value(task_pb2.TaskEventKind, kind, "TASK_EVENT_KIND_") for kind in args.kind or []]
    failing_since: float | None = None
    while True:
        events = client.watch_task_progress(
            task_id=args.task or "",
            orchestrator_id=args.orchestrator or "",
            workspace_id=args.workspace or "",
            after_cursor=cursor,
            kinds=kinds,
            keep_open=args.keep_open,
            bookmark_interval=WATCH_BOOKMARK,
        )
        try:
            for event in events:
                failing_since = None
                cursor = event.cursor
                if event.kind != task_pb2.TASK_EVENT_KIND_BOOKMARK:
                    show(event)
            return
        except Unavailable:
            now = time.monotonic()
            failing_since = failing_since or now
            if now - failing_since > WATCH_RECONNECT_SECONDS:
                raise
            print(f"reconnecting after cursor {cursor}", file=sys.stderr, flush=True)
            time.sleep(1.0)


def cmd_watch(client: WorkEngineClient, args: argparse.Namespace) -> None:
    try:
        with Printer(args) as show:
            follow(client, args, show)
    except KeyboardInterrupt:  # closing the client (on the way out) ends the stream
        return


def add_commands(commands: Any) -> None:
    """`watch`, on the top-level subparsers."""
    watch = client_command(
        commands,
        "watch",
        "follow task progress live: bars on a terminal, lines otherwise",
        cmd_watch,
        deadline=False,
    )
    scope = watch.add_mutually_exclusive_group(required=True)
    scope.add_argument("--task", help="one task; the watch ends when it finishes")
    scope.add_argument("--orchestrator", help="every task of one orchestrator")
    scope.add_argument("--workspace", help="every task of one workspace")
    watch.add_argument("--after-cursor", type=int, default=0, help="resume after this event cursor")
    watch.add_argument(
        "--kind",
        action="append",
        choices=[
            kind_name(v).lower()
            for v in task_pb2.TaskEventKind.values()
            if v not in (task_pb2.TASK_EVENT_KIND_UNSPECIFIED, task_pb2.TASK_EVENT_KIND_BOOKMARK)
        ],
        help="only these event kinds (repeatable)",
    )
    watch.add_argument("--keep-open", action="store_true", help="keep a --task watch open after it finishes")
    bars = watch.add_mutually_exclusive_group()
    bars.add_argument(
        "--bars", action="store_true", default=None, help="progress bars even when not a terminal"
    )
    bars.add_argument("--lines", dest="bars", action="store_false", help="plain lines even on a terminal")
