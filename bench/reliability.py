"""Reliability under crashes and concurrency: daemons are SIGKILLed mid-task, and nothing is lost
or done twice.

    python -m bench.reliability                       # 2,000 tasks, 16 daemons, 2 servers, 4 kills
    python -m bench.reliability --tasks 200 --daemons 6 --kills 3 --database-url postgresql://...

`--servers` `workengine serve` processes share one fresh database (on `--database-url`'s server,
else an embedded PostgreSQL). `--daemons` daemons, each a separate OS process running
examples/python_daemon.py (heartbeats, `identity`, a log of what it claimed), spread over the
servers. The tasks, a random dependency graph (edges to earlier tasks, with fan-out hubs and
fan-in joins), are created through the first server while the daemons already work. During the
run `--kills` daemons are SIGKILLed while they hold a task, and each is replaced by a new one;
the leases of their tasks expire and other daemons finish them. A WatchTaskProgress stream of
the orchestrator, opened on the last server before anything happens, records every event.

At the end every task must be DONE, and the run is checked against the daemons' own logs, the
attempt history (GetTask), the event table and the stream; `check` lists each invariant. Prints
one table row; exits non-zero with the violations when any invariant fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, Protocol

import grpc
import psycopg

from bench.server import Served, fresh_database
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]
DAEMON = ROOT / "examples" / "python_daemon.py"
ORCHESTRATOR = "reliability"
PROBE = "reliability-probe"
CREATORS = 8  # CreateTask calls in flight
# How long a daemon about to be killed is frozen first: a report it already sent is answered.
FREEZE_SECONDS = 0.3  # its tasks move the event feed without being watched
PRIORITIES = [
    task_pb2.TASK_PRIORITY_LOW,
    task_pb2.TASK_PRIORITY_MEDIUM,
    task_pb2.TASK_PRIORITY_HIGH,
    task_pb2.TASK_PRIORITY_CRITICAL,
]
DONE = task_pb2.TASK_STATUS_DONE


@dataclass(frozen=True)
class Settings:
    tasks: int = 2_000
    daemons: int = 16
    servers: int = 2
    kills: int = 4
    lease_seconds: float = 3.0
    work_seconds: float = 0.02
    seed: int = 5
    # The whole run (creation, work, lease expiries) must end within this.
    limit_seconds: float = 300.0


@dataclass
class Report:
    tasks: int = 0
    done: int = 0
    daemons: int = 0
    killed: int = 0
    killed_mid_task: int = 0
    lease_expiries: int = 0
    attempts: int = 0
    events: int = 0
    streamed: int = 0
    lost: int = 0
    duplicates: int = 0
    wall_seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def table(self) -> str:
        header = [
            "tasks processed",
            "daemons",
            "daemons killed",
            "lease expiries",
            "attempts",
            "events checked",
            "tasks lost",
            "duplicates",
            "wall time",
        ]
        row = [
            f"{self.done:,}",
            f"{self.daemons}",
            f"{self.killed} ({self.killed_mid_task} mid-task)",
            f"{self.lease_expiries}",
            f"{self.attempts:,}",
            f"{self.events:,} (+ {self.streamed:,} streamed)",
            f"{self.lost}",
            f"{self.duplicates}",
            f"{self.wall_seconds:.1f} s",
        ]
        return "\n".join(
            [
                "| " + " | ".join(header) + " |",
                "|" + "|".join("---:" for _ in header) + "|",
                "| " + " | ".join(row) + " |",
            ]
        )


def dependency_graph(tasks: int, rng: random.Random) -> list[list[int]]:
    """For each task, the earlier tasks it depends on: most depend on 1-3 of the 8th to 60th
    before them (chains; none of the 7 just before, so creation can run 8 calls at a time),
    some also on a hub (every 50th task: fan-out), every 100th on 20 tasks from anywhere
    before it (fan-in)."""
    graph: list[list[int]] = []
    hubs: list[int] = []
    for index in range(tasks):
        depends: set[int] = set()
        window = range(max(0, index - 60), max(0, index - CREATORS + 1))
        if window and rng.random() < 0.7:
            depends.update(rng.sample(window, min(len(window), rng.randint(1, 3))))
        hubs_before = [hub for hub in hubs if hub <= index - CREATORS]
        if hubs_before and rng.random() < 0.15:
            depends.add(rng.choice(hubs_before))
        if index % 100 == 99:
            depends.update(rng.sample(range(index - CREATORS + 1), 20))
        if index % 50 == 0:
            hubs.append(index)
        graph.append(sorted(depends))
    return graph


def task_id(index: int) -> str:
    return f"t{index:05d}"


class Watcher(threading.Thread):
    """A WatchTaskProgress stream of the orchestrator, read on a thread into `events`
    (position, task, kind, attempt). It asks for bookmarks every second: the first proves the
    stream is live, one at or past the log's last position proves it has everything."""

    def __init__(self, target: str) -> None:
        super().__init__(daemon=True)
        self.channel = grpc.insecure_channel(target)
        request = pb.WatchTaskProgressRequest(orchestrator_id=ORCHESTRATOR)
        request.bookmark_interval.FromTimedelta(timedelta(seconds=1))
        self.call = pb_grpc.WorkEngineServiceStub(self.channel).WatchTaskProgress(request)
        self.events: list[tuple[int, str, str, int]] = []
        self.completed = 0
        self.bookmark = -1
        self.error: grpc.RpcError | None = None

    def run(self) -> None:
        try:
            for response in self.call:
                event = response.event
                if event.kind == task_pb2.TASK_EVENT_KIND_BOOKMARK:
                    self.bookmark = event.cursor
                    continue
                kind = task_pb2.TaskEventKind.Name(event.kind).removeprefix("TASK_EVENT_KIND_")
                self.events.append((event.cursor, event.task.id, kind, event.attempt))
                self.completed += kind == "COMPLETED"
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.error = error

    def caught_up_to(self, position: int, probe: Callable[[], None], within: float) -> bool:
        """Waits for a bookmark at or past `position`. A bookmark only comes when the process's
        feed has moved past the last event sent, so `probe` writes an event out of the watch's
        scope (a task of another orchestrator) each time round."""
        deadline = time.monotonic() + within
        while self.bookmark < position and self.error is None and time.monotonic() < deadline:
            probe()
            for _ in range(20):
                if self.bookmark >= position:
                    break
                time.sleep(0.1)
        return self.bookmark >= position

    def close(self) -> None:  # idempotent
        self.call.cancel()
        self.join(10)
        self.channel.close()


class DaemonLog(Protocol):
    """What the checks read of a daemon: its name (its identity), whether it was killed, and
    its log lines ({"event": "claimed" | "completed" | "gave_up", "task", "attempt", ...})."""

    name: str
    killed: bool

    def lines(self) -> list[dict[str, Any]]: ...


class DaemonProcess:
    """examples/python_daemon.py in its own OS process; what it claimed and completed is in
    its `--log` file, one JSON line each, written before it works on the task."""

    def __init__(self, name: str, target: str, settings: Settings, logs: Path) -> None:
        self.name, self.target = name, target
        self.log = logs / f"{name}.jsonl"
        self.log.touch()
        self._output = (logs / f"{name}.out").open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(DAEMON),
                *("--target", target, "--orchestrator", ORCHESTRATOR, "--name", name),
                *("--wait", "1", "--work-seconds", str(settings.work_seconds)),
                *("--lease-duration", str(settings.lease_seconds), "--log", str(self.log)),
            ],
            stdout=self._output,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        self.killed = False
        self._terminated = False
        self.cpu_seconds = 0.0  # read just before it is stopped

    def lines(self) -> list[dict[str, Any]]:
        """Its log's complete lines (each is one write, but a read may catch one half-written)."""
        text = self.log.read_text()
        return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line.strip()]

    def kill_mid_task(self, stub: pb_grpc.WorkEngineServiceStub, within: float) -> tuple[str, int] | None:
        """SIGKILLs the daemon while it holds a task: once its last log line is a claim, it is
        frozen (SIGSTOP), given a moment for a report it may already have sent to be answered,
        and killed only if the log still ends with that claim and the server still has that
        attempt running; otherwise it is resumed (SIGCONT) and watched again. Returns the
        (task, attempt) it held, or None when no such moment came within `within` seconds."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            lines = self.lines()
            if lines and lines[-1]["event"] == "claimed":
                os.kill(self.process.pid, signal.SIGSTOP)
                time.sleep(FREEZE_SECONDS)
                last = self.lines()[-1]
                task = stub.GetTask(pb.GetTaskRequest(task_id=last["task"])).task
                running = task.status == task_pb2.TASK_STATUS_IN_PROGRESS and task.attempt == last["attempt"]
                if last["event"] == "claimed" and running:
                    self.cpu_seconds = cpu_seconds(self.process.pid)
                    os.kill(self.process.pid, signal.SIGKILL)
                    self.process.wait()
                    self.killed = True
                    return last["task"], last["attempt"]
                os.kill(self.process.pid, signal.SIGCONT)
            time.sleep(0.005)
        return None

    def terminate(self) -> None:
        """Asks it to stop (once: a second SIGTERM during its exit would kill it)."""
        if not self._terminated and self.process.poll() is None:
            self.cpu_seconds = cpu_seconds(self.process.pid)
            self.process.send_signal(signal.SIGTERM)
        self._terminated = True

    def stop(self) -> int:
        self.terminate()
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            self._output.close()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a live process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def done_count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM tasks WHERE orchestrator_id = %s AND status = 'DONE'", (ORCHESTRATOR,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def event_table(database_url: str) -> list[tuple[int, str, str, int]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT position, task_id, kind, attempt FROM task_events WHERE orchestrator_id = %s "
            "ORDER BY position",
            (ORCHESTRATOR,),
        ).fetchall()
    return [(int(p), str(t), str(k), int(a)) for p, t, k, a in rows]


@contextmanager
def servers(database_url: str, settings: Settings) -> Iterator[list[Served]]:
    flags = ["--lease-duration", f"{settings.lease_seconds}s", "--maintenance-interval", "0.2"]
    with ExitStack() as stack:
        running = [Served(database_url, *flags)]  # migrates before the others start
        stack.callback(running[0].stop)
        for _ in range(settings.servers - 1):
            running.append(Served(database_url, *flags, "--no-migrate"))
            stack.callback(running[-1].stop)
        yield running


def run(database_url: str, settings: Settings = Settings(), out: IO[str] | None = None) -> Report:
    """One run on `database_url` (an empty database: the servers migrate it). Returns the
    report; `report.failures` lists every violated invariant (empty when all hold)."""
    rng = random.Random(settings.seed)
    graph = dependency_graph(settings.tasks, rng)
    priorities = [rng.choice(PRIORITIES) for _ in graph]
    logs = Path(tempfile.mkdtemp(prefix="workengine-reliability-"))
    report = Report(tasks=settings.tasks)

    def say(message: str) -> None:
        if out is not None:
            print(message, file=out, flush=True)

    started = time.monotonic()
    with servers(database_url, settings) as running, ExitStack() as stack:
        targets = [s.target for s in running]
        channel = stack.enter_context(grpc.insecure_channel(targets[0]))
        stub = pb_grpc.WorkEngineServiceStub(channel)
        stub.RegisterOrchestrator(
            pb.RegisterOrchestratorRequest(orchestrator_id=ORCHESTRATOR, display_name="Reliability")
        )
        stub.RegisterOrchestrator(pb.RegisterOrchestratorRequest(orchestrator_id=PROBE, display_name="Probe"))

        def probe() -> None:
            stub.CreateTask(pb.CreateTaskRequest(orchestrator_id=PROBE, workspace_id=PROBE, title="probe"))

        watcher = Watcher(targets[-1])  # on another process than the one tasks are created on
        watcher.start()
        stack.callback(watcher.close)
        if not watcher.caught_up_to(0, probe, within=30):
            raise RuntimeError(f"the watch never went live: {watcher.error}")

        daemons: list[DaemonProcess] = []

        def spawn(target: str) -> DaemonProcess:
            daemon = DaemonProcess(f"d{len(daemons) + 1:02d}", target, settings, logs)
            daemons.append(daemon)
            return daemon

        def stop_daemons() -> None:
            if report.daemons:
                return  # stopped already
            report.daemons = len(daemons)
            for daemon in daemons:
                daemon.terminate()
            for daemon in daemons:
                code = daemon.stop()
                if not daemon.killed and code != 0:
                    report.failures.append(f"daemon {daemon.name} exited with {code}")

        for index in range(settings.daemons):
            spawn(targets[index % len(targets)])
        stack.callback(stop_daemons)
        say(f"{settings.daemons} daemons on {len(targets)} servers; creating {settings.tasks} tasks")

        kill_errors: list[str] = []

        def killer() -> None:
            """SIGKILLs daemons, spread over the run, each while it holds a task, and starts a
            new one in place of each, until `kills` kills were mid-task. A kill can land just
            after a completion the daemon had already sent was committed (the freeze makes that
            unlikely, not impossible): a second later the task is DONE by that very attempt,
            and that kill does not count."""
            while (counted := report.killed_mid_task) < settings.kills and report.killed < 3 * settings.kills:
                threshold = (counted + 1) * settings.tasks // (settings.kills + 2)
                while watcher.completed < threshold and time.monotonic() - started < settings.limit_seconds:
                    time.sleep(0.05)
                live = [d for d in daemons if not d.killed and d.process.poll() is None]
                rng.shuffle(live)
                for victim in live:
                    if (held := victim.kill_mid_task(stub, within=5)) is not None:
                        spawn(victim.target)
                        report.killed += 1
                        time.sleep(1)
                        task = stub.GetTask(pb.GetTaskRequest(task_id=held[0])).task
                        if task.status == DONE and task.attempt == held[1]:
                            say(f"SIGKILLed {victim.name} just after it completed {held}")
                        else:
                            report.killed_mid_task += 1
                            say(f"SIGKILLed {victim.name} holding {held}; started d{len(daemons):02d}")
                        break
                else:
                    kill_errors.append(f"no daemon claimed a task to be killed in (kill {report.killed + 1})")
                    return

        killing = threading.Thread(target=killer, daemon=True)
        killing.start()

        def create(index: int) -> task_pb2.Task:
            request = pb.CreateTaskRequest(
                task_id=task_id(index),
                orchestrator_id=ORCHESTRATOR,
                workspace_id="reliability",
                title=f"task {index}",
                priority=priorities[index],
                depends_on=[task_id(d) for d in graph[index]],
                max_attempts=20,
            )
            task: task_pb2.Task = stub.CreateTask(request).task
            return task

        creations: dict[int, Future[task_pb2.Task]] = {}
        with ThreadPoolExecutor(CREATORS) as creators:
            for index, depends in enumerate(graph):
                for dependency in depends:
                    creations[dependency].result()  # a task names only tasks that exist
                creations[index] = creators.submit(create, index)
        created_blocked = {
            f.result().id for f in creations.values() if f.result().status == task_pb2.TASK_STATUS_BLOCKED
        }
        say(f"created in {time.monotonic() - started:.1f} s; {watcher.completed} done so far")

        while (done := done_count(database_url)) < settings.tasks:
            if time.monotonic() - started > settings.limit_seconds:
                report.failures.append(f"only {done} of {settings.tasks} tasks DONE after the time limit")
                break
            time.sleep(0.25)
        killing.join(timeout=max(1.0, settings.limit_seconds - (time.monotonic() - started)))
        report.failures.extend(kill_errors)
        report.wall_seconds = time.monotonic() - started
        server_cpu = [round(server.cpu_seconds(), 1) for server in running]
        stop_daemons()
        say(f"CPU seconds: servers {server_cpu}, daemons {sum(d.cpu_seconds for d in daemons):.1f}")

        table = event_table(database_url)
        if not watcher.caught_up_to(table[-1][0] if table else 0, probe, within=30):
            report.failures.append(f"the watch stream never caught up with the event table: {watcher.error}")
        watcher.close()

        channels = [stack.enter_context(grpc.insecure_channel(t)) for t in targets]
        stubs = [pb_grpc.WorkEngineServiceStub(c) for c in channels]
        with ThreadPoolExecutor(8) as pool:
            fetched = list(
                pool.map(
                    lambda i: stubs[i % len(stubs)].GetTask(pb.GetTaskRequest(task_id=task_id(i))),
                    range(settings.tasks),
                )
            )
        check(report, settings, graph, created_blocked, fetched, table, watcher.events, daemons)
    if not report.failures:
        shutil.rmtree(logs, ignore_errors=True)
    else:
        report.failures.append(f"daemon logs kept in {logs}")
    return report


def check(
    report: Report,
    settings: Settings,
    graph: list[list[int]],
    created_blocked: set[str],
    fetched: list[pb.GetTaskResponse],
    table: list[tuple[int, str, str, int]],
    streamed: list[tuple[int, str, str, int]],
    daemons: Sequence[DaemonLog],
) -> None:
    """Every invariant of the run, each violation appended to `report.failures`."""
    fail = report.failures.append
    report.events, report.streamed = len(table), len(streamed)

    # 1. Every task DONE, its attempts numbered 1..n, the last COMPLETED and the others
    #    abandoned by an expired lease (the daemons never report failures).
    attempts: dict[tuple[str, int], str] = {}
    completing: dict[str, tuple[str, int]] = {}  # task: the identity and attempt that completed it
    for response in fetched:
        task, history = response.task, list(response.attempts)
        report.done += task.status == DONE
        report.lease_expiries += task.lease_expiry_count
        outcomes = [a.outcome for a in history]
        if [a.attempt for a in history] != list(range(1, task.attempt + 1)):
            fail(f"{task.id}: attempts {[a.attempt for a in history]} but task.attempt {task.attempt}")
        if outcomes.count(task_pb2.ATTEMPT_OUTCOME_COMPLETED) != 1:
            report.duplicates += outcomes.count(task_pb2.ATTEMPT_OUTCOME_COMPLETED) > 1
            fail(f"{task.id}: attempt outcomes {outcomes}")
        elif outcomes[-1] != task_pb2.ATTEMPT_OUTCOME_COMPLETED:
            fail(f"{task.id}: the COMPLETED attempt is not the last: {outcomes}")
        if outcomes.count(task_pb2.ATTEMPT_OUTCOME_LEASE_EXPIRED) != len(history) - 1:
            fail(f"{task.id}: attempt outcomes {outcomes}")
        if task.lease_expiry_count != outcomes.count(task_pb2.ATTEMPT_OUTCOME_LEASE_EXPIRED):
            fail(f"{task.id}: lease_expiry_count {task.lease_expiry_count}, outcomes {outcomes}")
        for run in history:
            attempts[(task.id, run.attempt)] = run.identity
            if run.outcome == task_pb2.ATTEMPT_OUTCOME_COMPLETED:
                completing[task.id] = (run.identity, run.attempt)
    report.attempts = len(attempts)
    report.lost = settings.tasks - report.done
    if report.lost:
        fail(f"{report.lost} tasks not DONE")

    # 2. Each (task, attempt) started by exactly one daemon: the one whose own log says it
    #    claimed it, and whose identity the attempt history recorded. (A daemon is killed only
    #    while its log ends with a claim, so it never holds an attempt it did not log.) A
    #    killed daemon's last attempt was abandoned (another attempt of that task followed),
    #    or, if the kill came just after its completion committed, completed it.
    claimers: dict[tuple[str, int], list[str]] = defaultdict(list)
    mid_task = 0
    logged_completions: Counter[str] = Counter()
    for daemon in daemons:
        lines = daemon.lines()
        for line in lines:
            key = (line["task"], line["attempt"])
            if line["event"] == "claimed":
                claimers[key].append(daemon.name)
            elif line["event"] == "completed":
                logged_completions[line["task"]] += 1
                if completing.get(line["task"]) != (daemon.name, line["attempt"]):
                    fail(f"{daemon.name} logged completing {key}, the history says {completing.get(key[0])}")
        if daemon.killed:
            held = (lines[-1]["task"], lines[-1]["attempt"]) if lines else ("", 0)
            if (held[0], held[1] + 1) in attempts:
                mid_task += 1
            elif completing.get(held[0]) != (daemon.name, held[1]):
                fail(f"{daemon.name} was killed holding {held}: no attempt followed it, nor did it complete")
    report.killed_mid_task = mid_task  # the history's count; the killer's was provisional
    for key, names in claimers.items():
        if len(names) > 1:
            report.duplicates += 1
            fail(f"{key} claimed by {names}")
        if attempts.get(key) != names[0]:
            fail(f"{names[0]} logged claiming {key}, the history says {attempts.get(key)!r}")
    for key in attempts.keys() - claimers.keys():
        fail(f"{key}, started by {attempts[key]!r}, is in no daemon's log")
    report.duplicates += sum(count > 1 for count in logged_completions.values())

    # 3. Every event accounted for.
    kinds = Counter(kind for _, _, kind, _ in table)
    per_task: dict[str, Counter[str]] = defaultdict(Counter)
    started_at: dict[str, list[int]] = defaultdict(list)
    completed_at: dict[str, int] = {}
    started_attempts: Counter[tuple[str, int]] = Counter()
    for position, event_task, kind, attempt in table:
        per_task[event_task][kind] += 1
        if kind == "STARTED":
            started_at[event_task].append(position)
            started_attempts[(event_task, attempt)] += 1
        elif kind == "COMPLETED":
            completed_at[event_task] = position
        elif kind == "PROGRESS" and (event_task, attempt) not in attempts:
            fail(f"PROGRESS of {(event_task, attempt)}, an attempt that never started")
    expected = {
        "CREATED": settings.tasks,
        "STARTED": len(attempts),
        "LEASE_EXPIRED": report.lease_expiries,
        "UNBLOCKED": len(created_blocked),
        "COMPLETED": settings.tasks,
    }
    for kind, count in expected.items():
        if kinds[kind] != count:
            fail(f"{kinds[kind]} {kind} events, expected {count}")
    unexpected = set(kinds) - set(expected) - {"PROGRESS"}
    if unexpected:
        fail(f"unexpected events: {sorted(unexpected)}")
    for event_task, counts in per_task.items():
        if counts["COMPLETED"] != 1 or counts["CREATED"] != 1:
            report.duplicates += counts["COMPLETED"] > 1
            fail(f"{event_task}: {counts['COMPLETED']} COMPLETED, {counts['CREATED']} CREATED events")
        if counts["UNBLOCKED"] != (event_task in created_blocked):
            blocked = event_task in created_blocked
            fail(f"{event_task}: {counts['UNBLOCKED']} UNBLOCKED events; created BLOCKED: {blocked}")
    if set(started_attempts) != set(attempts) or max(started_attempts.values(), default=1) != 1:
        report.duplicates += sum(count > 1 for count in started_attempts.values())
        fail("STARTED events do not match the attempt history one to one")

    # 4. No dependent started before any of its dependencies completed, by event position.
    #    Position order is not commit order in general: a position is (xid << 20) + n, and
    #    PostgreSQL hands out xids in increasing order when a transaction first writes (or
    #    locks a row), not when it commits. It is valid here because the claim depends on the
    #    commit: every dependency's completion commits before the dependent can be TODO (the
    #    last one moves it BLOCKED -> TODO in its own transaction, after the earlier ones'
    #    decrements committed on the same row; one done before the dependent was created
    #    committed before that creation), and a claim locks the row, taking its xid, only
    #    after it has seen it TODO. So the claiming transaction's xid is assigned after each
    #    completing transaction committed, hence after that one was assigned its own xid:
    #    the STARTED position is the higher one.
    for index, depends in enumerate(graph):
        for dependency in depends:
            finished = completed_at.get(task_id(dependency))
            for position in started_at.get(task_id(index), []):
                if finished is None or position < finished:
                    fail(f"{task_id(index)} STARTED at {position} before {task_id(dependency)} completed")

    # 5. The stream opened on the other server before anything happened received exactly the
    #    table's events, in order.
    if streamed != table:
        first = next((i for i, (a, b) in enumerate(zip(streamed, table, strict=False)) if a != b), None)
        fail(
            f"the stream got {len(streamed)} events, the table has {len(table)}; first difference at {first}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = Settings()
    parser.add_argument("--database-url", help="a PostgreSQL server to create the run's database on")
    parser.add_argument("--tasks", type=int, default=defaults.tasks)
    parser.add_argument("--daemons", type=int, default=defaults.daemons, help="daemon processes")
    parser.add_argument("--servers", type=int, default=defaults.servers, help="workengine serve processes")
    parser.add_argument("--kills", type=int, default=defaults.kills, help="daemons SIGKILLed mid-task")
    parser.add_argument("--lease-seconds", type=float, default=defaults.lease_seconds)
    parser.add_argument("--work-seconds", type=float, default=defaults.work_seconds, help="per task")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args()
    settings = Settings(
        tasks=args.tasks,
        daemons=args.daemons,
        servers=args.servers,
        kills=args.kills,
        lease_seconds=args.lease_seconds,
        work_seconds=args.work_seconds,
        seed=args.seed,
    )
    with fresh_database(args.database_url) as database_url:
        report = run(database_url, settings, out=sys.stderr)
    print(report.table())
    if report.failures:
        print("\nFAILED:\n" + "\n".join(report.failures[:50]), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
