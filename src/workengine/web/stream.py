"""The dashboard's live feed: Server-Sent Events over the engine's watch use case.

`GET /api/events?[task_id=...|orchestrator_id=...]&after=<cursor>` (neither id: every task)
answers `text/event-stream`.
Each event's `id:` is its cursor, so the browser's EventSource, reconnecting after a network
blip or a server restart, sends `Last-Event-ID` and the watch resumes exactly there, replaying
from the event table what it missed: WatchTaskProgress's guarantee, by the same code. `after`
is the cursor the page's JSON came with (its state reflects everything up to it); without one
the watch opens with a snapshot. Messages:

- `event: task`, data: {cursor, kind, occurred_at, attempt, progress, message,
  estimated_completion_at (PROGRESS: the report's ETA, else null), task: summary}
- `event: bookmark`: nothing changed in scope up to this cursor (keeps a quiet page's resume
  point inside the retention)
- `event: reset`, data: {error}: the cursor cannot be resumed from (pruned, or ahead of the
  log): reload the view's JSON and open a new stream from its cursor
- a `: keep-alive` comment every HEARTBEAT_SECONDS, so idle proxies keep the connection and a
  client that left is noticed

Streams end when the server shuts down (the browser reconnects to whichever server answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from aiohttp import web

from workengine.domain import errors, validation
from workengine.domain.errors import InvalidArgument, ResourceExhausted
from workengine.domain.model import Bookmark, EventKind, TaskEvent
from workengine.engine import WorkEngine
from workengine.engine.events import WatchTarget
from workengine.web import convert
from workengine.web.errors import parse_int, query_int

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
BOOKMARK_INTERVAL = timedelta(seconds=30)
RECONNECT_MILLISECONDS = 1000
MAX_STREAMS_PER_CLIENT = 100
ENCODED_CACHE = 4096


class EncodedEvents:
    """Each event's SSE message, encoded once however many pages show it: with 100 tasks
    reporting and many viewers, encoding is most of a stream's cost."""

    def __init__(self, size: int = ENCODED_CACHE) -> None:
        self._size = size
        self._cache: OrderedDict[tuple[int, str, str], bytes] = OrderedDict()

    def message(self, event: TaskEvent) -> bytes:
        if event.kind is EventKind.SNAPSHOT:
            # Not kept: two snapshots at one cursor may show a task in two states (a snapshot
            # can show changes committed past its cursor, see Watcher._snapshot).
            return self._encode(event)
        key = (event.cursor, event.task.id, event.kind.value)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._encode(event)
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return found

    @staticmethod
    def _encode(event: TaskEvent) -> bytes:
        data = json.dumps(convert.event(event), separators=(",", ":"))
        return f"id: {event.cursor}\nevent: task\ndata: {data}\n\n".encode()


def watch_target(request: web.Request) -> WatchTarget:
    """What to follow, named as WatchTaskProgress names it: a task_id, an orchestrator_id, or
    neither (every task)."""
    task_id, orchestrator_id = request.query.get("task_id", ""), request.query.get("orchestrator_id", "")
    if "task_id" in request.query and "orchestrator_id" in request.query:
        raise InvalidArgument("target", "set at most one of task_id, orchestrator_id")
    if "task_id" in request.query:
        return WatchTarget(task_id=validation.require_id("task_id", task_id))
    if "orchestrator_id" in request.query:
        return WatchTarget(orchestrator_id=validation.require_id("orchestrator_id", orchestrator_id))
    return WatchTarget(everything=True)


def resume_cursor(request: web.Request) -> int:
    """Last-Event-ID (the browser's reconnect) over `after` (the page's first connection)."""
    last_event_id = request.headers.get("Last-Event-ID", "").strip()
    if last_event_id:
        return parse_int("Last-Event-ID", last_event_id)
    return query_int(request, "after")


class EventStreams:
    def __init__(self, engine: WorkEngine, max_per_client: int = MAX_STREAMS_PER_CLIENT) -> None:
        self._engine = engine
        self._encoded = EncodedEvents()
        self._closing = asyncio.Event()
        self._per_client: dict[str, int] = {}
        self._max_per_client = max_per_client  # 0: unlimited, as --max-streams-per-client

    async def check(self, target: WatchTarget) -> None:
        """NOT_FOUND, which a watch raises at its first step, raised before the stream starts,
        so that it comes as an HTTP status (404) rather than an ended stream."""
        if target.orchestrator_id:
            await self._engine.orchestrators.get(target.orchestrator_id)
        elif target.task_id:
            await self._engine.tasks.get_with_attempts(target.task_id)

    def close(self) -> None:
        """Ends every stream (server shutdown): aiohttp waits for open requests otherwise."""
        self._closing.set()

    async def serve(
        self, request: web.Request, target: WatchTarget, after: int, allowed: Callable[[], bool]
    ) -> web.StreamResponse:
        """Streams until the page goes, the server stops, or `allowed()` turns false (checked
        at each keep-alive: a signed-out or expired session's streams end)."""
        client = request.remote or ""
        if self._max_per_client and self._per_client.get(client, 0) >= self._max_per_client:
            raise ResourceExhausted(f"at most {self._max_per_client} live streams per client")
        # Counted before the first await, so that opens racing each other all see it.
        self._per_client[client] = self._per_client.get(client, 0) + 1
        try:
            await self.check(target)
            response = web.StreamResponse(
                headers={
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-store",
                    "X-Accel-Buffering": "no",  # nginx: pass each event on at once
                }
            )
            await response.prepare(request)
            await response.write(f"retry: {RECONNECT_MILLISECONDS}\n\n".encode())
            with contextlib.suppress(ConnectionResetError):  # the page went away
                await self._relay(response, target, after, allowed)
            return response
        finally:
            self._per_client[client] -= 1
            if not self._per_client[client]:
                del self._per_client[client]

    async def _relay(
        self, response: web.StreamResponse, target: WatchTarget, after: int, allowed: Callable[[], bool]
    ) -> None:
        events = self._engine.watcher.watch(
            target, after_cursor=after, keep_open=True, bookmark_interval=BOOKMARK_INTERVAL
        )
        closing = asyncio.ensure_future(self._closing.wait())
        pending: asyncio.Future[TaskEvent | Bookmark] | None = None
        try:
            while not self._closing.is_set():
                if pending is None:
                    pending = asyncio.ensure_future(anext(events))
                # Waits without cancelling the watch: cancelling it mid-read would end it.
                waiting: set[asyncio.Future[Any]] = {pending, closing}
                done, _ = await asyncio.wait(
                    waiting, timeout=HEARTBEAT_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                if pending not in done:
                    if not allowed():
                        return  # signed out or expired: the page reconnects and is asked to sign in
                    await response.write(b": keep-alive\n\n")
                    continue
                item, pending = pending, None
                await response.write(self._message(item))
        except StopAsyncIteration:
            pass
        except errors.OutOfRange as error:
            data = json.dumps({"error": error.message})
            await response.write(f"event: reset\ndata: {data}\n\n".encode())
        except errors.WorkEngineError as error:  # shutting down, the database unreachable
            log.debug("dashboard stream ended: %s", error.message)
        finally:
            closing.cancel()
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
            await events.aclose()

    def _message(self, item: asyncio.Future[TaskEvent | Bookmark]) -> bytes:
        found = item.result()  # raises what the watch raised
        if isinstance(found, Bookmark):
            return f"id: {found.cursor}\nevent: bookmark\ndata: {{}}\n\n".encode()
        return self._encoded.message(found)
