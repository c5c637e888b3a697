"""Fault runs (issue 5): the database crashes under load; the server is SIGTERMed mid-flight.

    python -m bench.faults                                  # both runs, default sizes
    python -m bench.faults --tasks 1000 --daemons 8 --outages 3
    python -m bench.faults --only restart                   # or: --only sigterm

**Database restart.** A `workengine serve` process on its own embedded PostgreSQL (never a
shared server: the run stops it). Daemons claim, report progress and complete; a producer
creates tasks (explicit ids, so a retry after UNAVAILABLE is answered ALREADY_EXISTS rather
than creating twice); two watchers follow the workspace, one keeping its stream through the
outages, one dropping it at each outage and resuming from its cursor. The database is stopped
(alternately `pg_ctl stop -m immediate`, a crash recovered from the WAL, and `-m fast`), left
down for a while, and started again; WorkEngine is never restarted. A probe measures how fast
RPCs answer during the outage and how long the service takes to recover. Afterwards the
database itself is read: every task whose creation or completion was answered OK is there and
DONE, and both watchers received every committed event of the workspace.

**SIGTERM.** A `workengine serve` process is sent SIGTERM while unary calls are in flight (two
CompleteTask calls held on row locks, one released within the grace period and one not, and a
stream of reads and progress reports), three watch streams and a long-poll claim are open.
In-flight calls finish OK, streams end UNAVAILABLE naming the cursor to resume from, the long
poll answers "no task", the process exits 0 within the grace period, and the call cut off at
the grace period left nothing half-written.

The tests (tests/e2e/test_faults.py) run both at a small size and assert on these reports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import psycopg
from google.protobuf import duration_pb2

from bench.outage import RestartableDatabase
from bench.server import Served, fresh_database
from workengine.store.migrate import migrate
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

T = TypeVar("T")
OK = grpc.StatusCode.OK
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
ORCHESTRATOR = "faults"
WORKSPACE = "ws-faults"
SENTINEL = "t-sentinel"


@dataclass
class Rpcs:
    """Every RPC the run sent, by outcome."""

    attempted: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)

    async def call(self, call: Awaitable[T]) -> tuple[T | None, grpc.StatusCode, float]:
        started = time.monotonic()
        try:
            response: T | None = await call
            code = OK
        except grpc.aio.AioRpcError as error:
            response, code = None, error.code()
            if code not in (UNAVAILABLE, grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.DEADLINE_EXCEEDED):
                self.unexpected.append(f"{code.name}: {error.details()}")
        self.attempted += 1
        self.codes[code.name] += 1
        return response, code, time.monotonic() - started


def backoff(attempt: int) -> float:
    return random.uniform(0, min(1.0, 0.05 * 2**attempt))


# 1. Database restart


@dataclass
class RestartReport:
    outages: int = 0
    outage_modes: Counter[str] = field(default_factory=Counter)
    rpcs: Rpcs = field(default_factory=Rpcs)
    outage_probes: int = 0
    outage_probe_codes: Counter[str] = field(default_factory=Counter)
    # Per kind of outage, seconds: probes sent while the database was down.
    slowest_outage_answer: dict[str, float] = field(default_factory=dict)
    slowest_recovery: float = 0.0  # seconds from the database's start to the first OK
    tasks_created: int = 0
    completions_answered_ok: int = 0
    progress_answered_ok: int = 0
    ambiguous_claims: int = 0  # claims answered UNAVAILABLE: may have started a task
    # From the database afterwards.
    created_but_missing: int = 0
    completed_but_not_done: int = 0
    done: int = 0
    left_todo: int = 0
    left_in_progress: int = 0
    events_committed: int = 0
    progress_events_committed: int = 0
    events_missed: dict[str, int] = field(default_factory=dict)
    events_repeated: dict[str, int] = field(default_factory=dict)
    watch_reconnects: dict[str, int] = field(default_factory=dict)
    serve_exit_code: int | None = None
    server_output: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> list[str]:
        """Lines of the server's log that report a failure it did not handle."""
        return [line for line in self.server_output if "Traceback" in line or " ERROR " in line]

    @property
    def tasks_lost(self) -> int:
        return self.created_but_missing + self.completed_but_not_done

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("faults injected (database stopped or frozen)", f"{self.outages} {dict(self.outage_modes)}"),
            ("RPCs attempted", f"{self.rpcs.attempted:,}"),
            ("  answered UNAVAILABLE", f"{self.rpcs.codes['UNAVAILABLE']:,}"),
            ("  answered with another error", f"{len(self.rpcs.unexpected)}"),
            (
                "probes during outages, all UNAVAILABLE",
                f"{self.outage_probes} ({dict(self.outage_probe_codes)})",
            ),
            (
                "slowest answer during an outage, by kind",
                ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in self.slowest_outage_answer.items()),
            ),
            (
                "calls caught mid-transaction by a freeze (DEADLINE_EXCEEDED)",
                f"{self.rpcs.codes['DEADLINE_EXCEEDED']}",
            ),
            ("slowest recovery after the database started", f"{self.slowest_recovery:.2f} s"),
            ("tasks created / DONE", f"{self.tasks_created} / {self.done}"),
            ("completions answered OK", f"{self.completions_answered_ok}"),
            (
                "claims answered UNAVAILABLE (left IN_PROGRESS)",
                f"{self.ambiguous_claims} ({self.left_in_progress})",
            ),
            ("tasks lost", f"{self.tasks_lost}"),
            ("server log lines with ERROR or a traceback", f"{len(self.server_errors)}"),
            (
                "events committed in the workspace (PROGRESS of them)",
                f"{self.events_committed} ({self.progress_events_committed})",
            ),
            (
                "progress answered OK",
                f"{self.progress_answered_ok}",
            ),
            ("events missed (held stream / resumed stream)", _pair(self.events_missed)),
            ("events repeated (held / resumed)", _pair(self.events_repeated)),
            ("stream reconnections (held / resumed)", _pair(self.watch_reconnects)),
        ]


def _pair(values: dict[str, int]) -> str:
    return f"{values.get('held', 0)} / {values.get('resumed', 0)}"


@dataclass
class Watched:
    positions: list[int] = field(default_factory=list)
    last: int = 0
    reconnects: int = 0


class RestartRun:
    def __init__(self, stub: pb_grpc.WorkEngineServiceStub, report: RestartReport) -> None:
        self.stub = stub
        self.report = report
        self.rpcs = report.rpcs
        self.created: set[str] = set()
        self.completed: set[str] = set()
        self.producing = True
        self.down = asyncio.Event()

    async def producer(self, tasks: int, seconds: float) -> None:
        for index in range(tasks):
            task_id = f"t-{index:05d}"
            request = pb.CreateTaskRequest(
                task_id=task_id, orchestrator_id=ORCHESTRATOR, workspace_id=WORKSPACE, title=task_id
            )
            for attempt in range(1_000):
                _, code, _ = await self.rpcs.call(self.stub.CreateTask(request, timeout=10))
                # ALREADY_EXISTS after an UNAVAILABLE: the first attempt committed.
                if code == OK or (code == grpc.StatusCode.ALREADY_EXISTS and attempt):
                    self.created.add(task_id)
                    break
                await asyncio.sleep(backoff(attempt))
            await asyncio.sleep(seconds / tasks)
        self.producing = False

    async def daemon(self, name: str) -> None:
        wait = duration_pb2.Duration(seconds=1)
        failures = 0
        while True:
            claimed, code, _ = await self.rpcs.call(
                self.stub.ClaimNextTask(
                    pb.ClaimNextTaskRequest(orchestrator_id=ORCHESTRATOR, wait=wait), timeout=10
                )
            )
            if claimed is None:
                if code in (UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    self.report.ambiguous_claims += 1
                failures += 1
                await asyncio.sleep(backoff(failures))
                continue
            failures = 0
            if not claimed.HasField("context"):
                if not self.producing:
                    return
                continue
            task_id, attempt = claimed.context.task.id, claimed.attempt
            progressed, _, _ = await self.rpcs.call(
                self.stub.UpdateTaskProgress(
                    pb.UpdateTaskProgressRequest(task_id=task_id, attempt=attempt, progress=50, message=name),
                    timeout=10,
                )
            )
            if progressed is not None:  # a report is not retried: best effort, like a daemon's
                self.report.progress_answered_ok += 1
            request = pb.CompleteTaskRequest(
                task_id=task_id,
                attempt=attempt,
                status=pb.COMPLETION_STATUS_COMPLETED,
                result=task_pb2.TaskResult(error="", artifacts=[task_pb2.Artifact(type="by", content=name)]),
            )
            for retry in range(1_000):  # CompleteTask is safe to repeat
                done, code, _ = await self.rpcs.call(self.stub.CompleteTask(request, timeout=10))
                if done is not None:
                    self.completed.add(task_id)
                    break
                if code not in (UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    break
                await asyncio.sleep(backoff(retry))

    async def watcher(self, name: str, watched: Watched, *, drop_at_outages: bool) -> None:
        """Follows the workspace from `watched.last`, reconnecting from its cursor when the
        stream ends (and, with drop_at_outages, deliberately at each outage)."""
        attempt = 0
        while True:
            stream = self.stub.WatchTaskProgress(
                pb.WatchTaskProgressRequest(workspace_id=WORKSPACE, after_cursor=watched.last)
            )
            dropper = None
            if drop_at_outages and not self.down.is_set():
                dropper = asyncio.create_task(self._drop_at_outage(stream))
            try:
                async for response in stream:
                    event = response.event
                    if event.kind == task_pb2.TASK_EVENT_KIND_SNAPSHOT:
                        continue
                    watched.positions.append(event.cursor)
                    watched.last = event.cursor
                    attempt = 0
            except grpc.aio.AioRpcError as error:
                if error.code() not in (UNAVAILABLE, grpc.StatusCode.CANCELLED):
                    self.rpcs.unexpected.append(f"watch {name}: {error.code().name}: {error.details()}")
            except asyncio.CancelledError:
                if dropper is None or not dropper.done() or dropper.cancelled():
                    raise  # the watcher itself is cancelled
            finally:
                if dropper is not None:
                    dropper.cancel()
            watched.reconnects += 1
            attempt += 1
            await asyncio.sleep(backoff(attempt))

    async def _drop_at_outage(self, stream: Any) -> None:
        await self.down.wait()
        stream.cancel()

    async def probe_outage(self, seconds: float, mode: str) -> None:
        """GetTask, one after another, while the database is down."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            _, code, elapsed = await self.rpcs.call(
                self.stub.GetTask(pb.GetTaskRequest(task_id=SENTINEL), timeout=30)
            )
            self.report.outage_probes += 1
            self.report.outage_probe_codes[code.name] += 1
            slowest = self.report.slowest_outage_answer
            slowest[mode] = max(slowest.get(mode, 0.0), elapsed)
            await asyncio.sleep(0.1)

    async def probe_recovery(self) -> None:
        started = time.monotonic()
        while True:
            _, code, _ = await self.rpcs.call(
                self.stub.GetTask(pb.GetTaskRequest(task_id=SENTINEL), timeout=30)
            )
            if code == OK:
                self.report.slowest_recovery = max(self.report.slowest_recovery, time.monotonic() - started)
                return
            if time.monotonic() - started > 60:
                raise AssertionError("the service did not recover within 60 s of the database's start")
            await asyncio.sleep(0.05)

    async def outages(
        self, database: RestartableDatabase, count: int, up: float, down: float, modes: tuple[str, ...]
    ) -> None:
        for index in range(count):
            await asyncio.sleep(up)
            mode = modes[index % len(modes)]
            if mode == "freeze":
                database.freeze()
            else:
                await asyncio.to_thread(database.halt, mode)
            self.down.set()
            self.report.outages += 1
            self.report.outage_modes[mode] += 1
            await self.probe_outage(down, mode)
            if mode == "freeze":
                database.thaw()
            else:
                await asyncio.to_thread(database.resume)
            self.down.clear()
            await self.probe_recovery()


async def _restart(
    database: RestartableDatabase,
    served: Served,
    *,
    tasks: int,
    daemons: int,
    outages: int,
    up: float,
    down: float,
    modes: tuple[str, ...],
) -> RestartReport:
    report = RestartReport()
    async with grpc.aio.insecure_channel(served.target) as channel:
        stub = pb_grpc.WorkEngineServiceStub(channel)
        run = RestartRun(stub, report)
        await stub.RegisterOrchestrator(
            pb.RegisterOrchestratorRequest(orchestrator_id=ORCHESTRATOR, display_name="faults"), timeout=10
        )
        sentinel = await stub.CreateTask(
            pb.CreateTaskRequest(
                task_id=SENTINEL, orchestrator_id="faults", workspace_id=WORKSPACE, title="s"
            ),
            timeout=10,
        )
        await stub.CancelTask(pb.CancelTaskRequest(task_id=sentinel.task.id), timeout=10)
        start = await _head_position(database.url)
        watched = {"held": Watched(last=start), "resumed": Watched(last=start)}
        background = [
            asyncio.create_task(run.watcher("held", watched["held"], drop_at_outages=False)),
            asyncio.create_task(run.watcher("resumed", watched["resumed"], drop_at_outages=True)),
        ]
        workers = [asyncio.create_task(run.daemon(f"d{i}")) for i in range(daemons)]
        producing_seconds = outages * (up + down) + up
        producer = asyncio.create_task(run.producer(tasks, producing_seconds))
        await run.outages(database, outages, up, down, modes)
        await producer
        await asyncio.gather(*workers)
        report.tasks_created = len(run.created)
        report.completions_answered_ok = len(run.completed)
        expected = await _workspace_positions(database.url, start)
        report.events_committed = len(expected)
        report.progress_events_committed = len(await _workspace_positions(database.url, start, "PROGRESS"))
        for _ in range(200):  # the watchers catch up with everything committed
            if all(w.last >= expected[-1] for w in watched.values()) if expected else True:
                break
            await asyncio.sleep(0.05)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        for name, seen in watched.items():
            report.events_missed[name] = len(set(expected) - set(seen.positions))
            report.events_repeated[name] = len(seen.positions) - len(set(seen.positions))
            report.watch_reconnects[name] = seen.reconnects
        await _count_outcomes(database.url, run, report)
    return report


async def _head_position(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as connection:
        cursor = await connection.execute("SELECT coalesce(max(position), 0) FROM task_events")
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def _workspace_positions(url: str, after: int, kind: str | None = None) -> list[int]:
    async with await psycopg.AsyncConnection.connect(url) as connection:
        cursor = await connection.execute(
            "SELECT position FROM task_events WHERE workspace_id = %s AND position > %s"
            " AND (%s::text IS NULL OR kind = %s) ORDER BY position",
            (WORKSPACE, after, kind, kind),
        )
        return [int(row[0]) for row in await cursor.fetchall()]


async def _count_outcomes(url: str, run: RestartRun, report: RestartReport) -> None:
    async with await psycopg.AsyncConnection.connect(url) as connection:
        cursor = await connection.execute(
            "SELECT id, status FROM tasks WHERE workspace_id = %s AND id <> %s", (WORKSPACE, SENTINEL)
        )
        status = {str(row[0]): str(row[1]) for row in await cursor.fetchall()}
    report.created_but_missing = len(run.created - status.keys())
    report.completed_but_not_done = sum(1 for t in run.completed if status.get(t) != "DONE")
    counts = Counter(status.values())
    report.done, report.left_todo, report.left_in_progress = (
        counts["DONE"],
        counts["TODO"],
        counts["IN_PROGRESS"],
    )


def database_restart(
    *,
    tasks: int = 300,
    daemons: int = 4,
    outages: int = 2,
    up: float = 2.0,
    down: float = 3.0,
    modes: tuple[str, ...] = ("immediate", "fast"),
) -> RestartReport:
    """The database-restart run on a fresh embedded PostgreSQL of its own. `modes` cycle over
    the outages: "immediate" (a crash), "fast" (a clean stop), "freeze" (SIGSTOP: the
    database neither answers nor refuses)."""
    database = RestartableDatabase()
    served = None
    try:
        migrate(database.url)
        served = Served(database.url, "--no-migrate")
        report = asyncio.run(
            _restart(
                database, served, tasks=tasks, daemons=daemons, outages=outages, up=up, down=down, modes=modes
            )
        )
        served.process.send_signal(signal.SIGTERM)
        report.serve_exit_code = served.process.wait(30)
        report.server_output = served.output
        return report
    finally:
        if served is not None:
            served.stop()
        database.close()


# 2. SIGTERM


@dataclass
class ShutdownReport:
    grace_seconds: float = 0.0
    exit_code: int | None = None
    exit_seconds: float = 0.0  # from SIGTERM to the process's exit
    held_completion: str = ""  # released within the grace period: "OK DONE" expected
    cut_completion: str = ""  # still held at the grace period: a clean status
    cut_task_after: str = ""  # that task afterwards: still IN_PROGRESS, no result, no event
    streams: list[str] = field(default_factory=list)  # "CODE: message" per stream
    streams_ended_seconds: float = 0.0  # from SIGTERM to the end of the last stream read
    long_poll: str = ""
    flood: Counter[str] = field(default_factory=Counter)  # codes of calls sent around SIGTERM
    flood_ok_after_signal: int = 0
    flood_other: list[str] = field(default_factory=list)  # neither OK nor UNAVAILABLE
    server_output: list[str] = field(default_factory=list)
    inconsistent_tasks: int = 0  # status differs from the status of the task's last event

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("grace period", f"{self.grace_seconds:.0f} s"),
            ("exit code / time after SIGTERM", f"{self.exit_code} / {self.exit_seconds:.2f} s"),
            ("CompleteTask in flight, released in grace", self.held_completion),
            ("CompleteTask still held at grace end", self.cut_completion),
            ("  that task afterwards", self.cut_task_after),
            (
                "watch streams: status, ended after SIGTERM within",
                f"{', '.join(s.split(':')[0] for s in self.streams)}; "
                f"{self.streams_ended_seconds * 1000:.0f} ms",
            ),
            ("long-poll claim", self.long_poll),
            ("unary calls around SIGTERM", f"{sum(self.flood.values())} {dict(self.flood)}"),
            ("  answered OK after SIGTERM was sent", f"{self.flood_ok_after_signal}"),
            ("tasks whose status disagrees with their last event", f"{self.inconsistent_tasks}"),
        ]


async def _stream_end(stream: Any) -> tuple[str, float]:
    """Reads a stream to its end: ("CODE: message", the monotonic time it ended at)."""
    try:
        while True:
            await asyncio.wait_for(stream.read(), 30)  # events buffered before the end, if any
    except grpc.aio.AioRpcError as error:
        return f"{error.code().name}: {error.details()}", time.monotonic()
    except TimeoutError:
        return "still open 30 s after its last message", time.monotonic()


async def _exit_time(served: Served) -> tuple[int, float]:
    """The process's exit code, and the monotonic time it exited at."""

    def wait() -> tuple[int, float]:
        code = served.process.wait(60)
        return code, time.monotonic()

    return await asyncio.to_thread(wait)


async def _waiting_on_locks(url: str, count: int) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        for _ in range(200):
            cursor = await connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
            row = await cursor.fetchone()
            if row is not None and row[0] >= count:
                return
            await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {count} calls waiting on the held rows")


async def _hold_row(url: str, task_id: str) -> psycopg.AsyncConnection[Any]:
    connection = await psycopg.AsyncConnection.connect(url)
    await connection.execute("SELECT 1 FROM tasks WHERE id = %s FOR UPDATE", (task_id,))
    return connection


async def _status(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str, Any]:
    try:
        return OK, "", await call
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or "", None


async def _sigterm(url: str, served: Served, grace: float, flood_tasks: int) -> ShutdownReport:
    report = ShutdownReport(grace_seconds=grace)
    async with grpc.aio.insecure_channel(served.target) as channel:
        stub = pb_grpc.WorkEngineServiceStub(channel)
        for orchestrator in (ORCHESTRATOR, "idle"):
            await stub.RegisterOrchestrator(
                pb.RegisterOrchestratorRequest(orchestrator_id=orchestrator, display_name=orchestrator)
            )
        ids = ["t-held", "t-cut", *(f"t-{i}" for i in range(flood_tasks))]
        for task_id in ids:
            request = pb.CreateTaskRequest(
                task_id=task_id, orchestrator_id=ORCHESTRATOR, workspace_id=WORKSPACE, title=task_id
            )
            await stub.CreateTask(request)
            await stub.ExecuteTask(pb.ExecuteTaskRequest(orchestrator_id=ORCHESTRATOR, task_id=task_id))

        streams = [
            stub.WatchTaskProgress(pb.WatchTaskProgressRequest(task_id="t-held")),
            stub.WatchTaskProgress(pb.WatchTaskProgressRequest(workspace_id=WORKSPACE)),
            stub.WatchTaskProgress(pb.WatchTaskProgressRequest(orchestrator_id=ORCHESTRATOR)),
        ]
        for stream in streams:
            await asyncio.wait_for(stream.read(), 10)  # the snapshot: the stream is open
        stream_ends = [asyncio.create_task(_stream_end(stream)) for stream in streams]
        long_poll = asyncio.create_task(
            _status(
                stub.ClaimNextTask(
                    pb.ClaimNextTaskRequest(orchestrator_id="idle", wait=duration_pb2.Duration(seconds=30)),
                    timeout=60,
                )
            )
        )

        def completion(task_id: str) -> pb.CompleteTaskRequest:
            return pb.CompleteTaskRequest(
                task_id=task_id,
                attempt=1,
                status=pb.COMPLETION_STATUS_COMPLETED,
                result=task_pb2.TaskResult(artifacts=[task_pb2.Artifact(type="t", content=task_id)]),
            )

        held_lock = await _hold_row(url, "t-held")
        cut_lock = await _hold_row(url, "t-cut")
        held = asyncio.create_task(_status(stub.CompleteTask(completion("t-held"), timeout=60)))
        cut = asyncio.create_task(_status(stub.CompleteTask(completion("t-cut"), timeout=60)))
        await _waiting_on_locks(url, 2)

        signalled = asyncio.Event()
        flood_stop = time.monotonic() + 1.5

        async def flood(index: int) -> None:
            task_id = f"t-{index}"
            progress = 0
            while time.monotonic() < flood_stop:
                progress = (progress + 1) % 100
                request = pb.UpdateTaskProgressRequest(task_id=task_id, attempt=1, progress=progress)
                code, details, _ = await _status(stub.UpdateTaskProgress(request, timeout=10))
                report.flood[code.name] += 1
                if code not in (OK, UNAVAILABLE):
                    report.flood_other.append(f"UpdateTaskProgress {code.name}: {details}")
                if code == OK and signalled.is_set():
                    report.flood_ok_after_signal += 1
                code, details, _ = await _status(stub.GetTask(pb.GetTaskRequest(task_id=task_id), timeout=10))
                report.flood[code.name] += 1
                if code not in (OK, UNAVAILABLE):
                    report.flood_other.append(f"GetTask {code.name}: {details}")
                if code == UNAVAILABLE:
                    await asyncio.sleep(0.05)  # as a client backs off

        flooding = [asyncio.create_task(flood(i)) for i in range(flood_tasks)]
        await asyncio.sleep(0.5)
        signalled_at = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        exited = asyncio.create_task(_exit_time(served))
        signalled.set()
        await asyncio.sleep(min(1.0, grace / 3))
        await held_lock.commit()  # within the grace period: this call must finish OK
        await held_lock.close()
        code, details, answer = await held
        report.held_completion = (
            f"{code.name} {task_pb2.TaskStatus.Name(answer.task.status)}"
            if answer
            else f"{code.name}: {details}"
        )
        await asyncio.gather(*flooding)
        for ending in stream_ends:
            status, seconds = await ending
            report.streams.append(status)
            report.streams_ended_seconds = max(report.streams_ended_seconds, seconds - signalled_at)
        code, _, claimed = await long_poll
        report.long_poll = (
            f"{code.name}, {'a task' if claimed and claimed.HasField('context') else 'no task'}"
        )
        code, details, _ = await cut
        report.cut_completion = f"{code.name}: {details}"
        report.exit_code, exit_time = await exited
        report.exit_seconds = exit_time - signalled_at
        await cut_lock.commit()  # only now, after the process is gone
        await cut_lock.close()
    async with await psycopg.AsyncConnection.connect(url) as connection:
        cursor = await connection.execute(
            "SELECT status, attempt, result IS NOT NULL, "
            "(SELECT count(*) FROM task_events e WHERE e.task_id = t.id AND e.kind = 'COMPLETED') "
            "FROM tasks t WHERE id = 't-cut'"
        )
        row = await cursor.fetchone()
        assert row is not None
        report.cut_task_after = (
            f"{row[0]}, attempt {row[1]}, result stored: {row[2]}, COMPLETED events: {row[3]}"
        )
        cursor = await connection.execute(
            "SELECT count(*) FROM tasks t WHERE t.status <> ("
            "  SELECT e.status FROM task_events e WHERE e.task_id = t.id ORDER BY e.position DESC LIMIT 1)"
        )
        row = await cursor.fetchone()
        report.inconsistent_tasks = int(row[0]) if row else -1
    return report


def sigterm(database_url: str, *, grace: float = 5.0, flood_tasks: int = 8) -> ShutdownReport:
    """The SIGTERM run, on `database_url` (an empty, migrated database)."""
    env = {**os.environ, "WORKENGINE_SHUTDOWN_GRACE": str(grace)}
    served = Served(database_url, "--no-migrate", env=env)
    try:
        report = asyncio.run(_sigterm(database_url, served, grace, flood_tasks))
        report.server_output = served.output
        return report
    finally:
        served.stop()


def _print(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"\n{title}\n")
    print(f"| {'figure':<{width}} | value |\n|{'-' * (width + 2)}|---:|")
    for name, value in rows:
        print(f"| {name:<{width}} | {value} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["restart", "sigterm"])
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--daemons", type=int, default=8)
    parser.add_argument("--outages", type=int, default=6, help="cycling crash, clean stop, freeze")
    parser.add_argument("--down", type=float, default=3.0, help="seconds the database stays down")
    parser.add_argument("--up", type=float, default=2.0, help="seconds of work between outages")
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument("--database-url", help="for the SIGTERM run; default: an embedded PostgreSQL")
    args = parser.parse_args()
    if args.only != "sigterm":
        restart = database_restart(
            tasks=args.tasks,
            daemons=args.daemons,
            outages=args.outages,
            up=args.up,
            down=args.down,
            modes=("immediate", "fast", "freeze"),
        )
        _print("Database restart (embedded PostgreSQL of the run's own)", restart.rows())
    if args.only != "restart":
        with fresh_database(args.database_url) as url:
            migrate(url)
            shutdown = sigterm(url, grace=args.grace)
        _print("SIGTERM with calls and streams in flight", shutdown.rows())


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
