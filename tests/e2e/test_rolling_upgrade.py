"""A rolling upgrade as an operator runs one (docs/development.md, "Migrations and rolling
upgrades"): a replica of the previous release (deploy/previous-release) serves the database and
its daemons long-poll; this code's migrations run under it; a replica of this code joins on the
same database. Daemons of both releases, connected to both replicas, then share one workload of
dependent tasks created through both, and a task started through the old replica is finished
through the new one.

Nothing is lost: every task is DONE, by one attempt, reported once; both watchers (one per
replica, the old one open across the migration) see every event once and in order, the same
as the log replays through either replica; both releases count the same statistics; and
neither replica logged an error, so no call failed inside one even if its client retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import Counter
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field
from typing import cast

import psycopg
import pytest

from tests.e2e.daemons import Daemon, DaemonRun
from tests.e2e.serving import ServeProcess
from tests.e2e.upgrade import THIS_RELEASE, Release, logged_errors
from tests.release import extract, missing_dependencies, previous_release
from workengine.client import AsyncWorkEngineClient
from workengine.v1 import task_pb2

FLEET = "fleet"
WORKSPACE = "ws-upgrade"
# Lifecycles through the previous release before the migration: psycopg prepares a statement
# on its sixth run on a connection, and a replica that has been serving has its hot statements
# prepared, planned against the schema as it was.
WARM_UP = 12
LAYERS, WIDTH = 4, 12  # the workload: each task of a layer waits on two of the layer before
Kind = task_pb2.TaskEventKind
LIVE = [Kind.TASK_EVENT_KIND_STARTED, Kind.TASK_EVENT_KIND_PROGRESS, Kind.TASK_EVENT_KIND_COMPLETED]


@pytest.fixture(scope="module")
def previous(tmp_path_factory: pytest.TempPathFactory) -> Release:
    commit = previous_release()
    tree = extract(commit, tmp_path_factory.mktemp("previous-release"))
    missing = missing_dependencies(tree)
    assert not missing, f"the previous release ({commit[:7]}) needs what this environment lacks: {missing}"
    release = Release(f"previous release {commit[:7]}", tree)
    release.check_runs_its_own_code()
    return release


@dataclass
class Workload:
    """The fleet's tasks: through which replica ("old" or "new") each was created, what it waits on."""

    created_through: dict[str, str] = field(default_factory=dict)
    depends_on: dict[str, list[str]] = field(default_factory=dict)
    layers: list[list[str]] = field(default_factory=list)
    warm_up: list[str] = field(default_factory=list)
    handoff: str = ""
    gate: str = ""

    def layered(self) -> Iterator[str]:
        return (task for layer in self.layers for task in layer)


@dataclass
class Watcher:
    """An orchestrator watch of the fleet through one replica: its snapshot, then live events
    until every task it expects has COMPLETED."""

    client: AsyncWorkEngineClient
    expected: int  # distinct tasks to see COMPLETED
    snapshot: set[str] = field(default_factory=set)
    snapshot_cursor: int = 0
    events: list[task_pb2.TaskEvent] = field(default_factory=list)
    snapshot_taken: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, snapshot_size: int) -> None:
        completed: set[str] = set()
        async for event in self.client.watch_task_progress(orchestrator_id=FLEET):
            if event.kind == Kind.TASK_EVENT_KIND_SNAPSHOT:
                self.snapshot.add(event.task.id)
                self.snapshot_cursor = event.cursor
                if len(self.snapshot) == snapshot_size:
                    self.snapshot_taken.set()
                continue
            self.events.append(event)
            if event.kind == Kind.TASK_EVENT_KIND_COMPLETED:
                completed.add(event.task.id)
                if len(completed) == self.expected:
                    return


EventView = tuple[int, int, str, int, int, int]


def event_view(event: task_pb2.TaskEvent) -> EventView:
    return event.cursor, event.kind, event.task.id, event.attempt, event.progress, event.task.status


async def lifecycle(client: AsyncWorkEngineClient, title: str) -> str:
    task = await client.create_task(FLEET, WORKSPACE, title)
    claimed = await client.claim_next_task(FLEET, identity="warm-up")
    assert claimed.context.task.id == task.id
    await client.update_task_progress(task.id, claimed.attempt, 50, "warming up")
    await client.complete_task(task.id, claimed.attempt)
    return task.id


async def before_the_upgrade(old: AsyncWorkEngineClient, work: Workload) -> int:
    """Work through the previous release alone: finished tasks, one left running (the handoff,
    to be finished through the new replica), a gate and the first layer waiting on it. Returns
    the handoff's attempt."""
    await old.register_orchestrator("Fleet", orchestrator_id=FLEET)
    await old.register_orchestrator("Gatekeeper", orchestrator_id="gatekeeper")
    work.warm_up = [await lifecycle(old, f"warm-up {n}") for n in range(WARM_UP)]
    work.handoff = (await old.create_task(FLEET, WORKSPACE, "handoff")).id
    claimed = await old.claim_next_task(FLEET, identity="handoff")
    assert claimed.context.task.id == work.handoff
    await old.update_task_progress(work.handoff, claimed.attempt, 30, "started on the old replica")
    work.gate = (await old.create_task("gatekeeper", WORKSPACE, "gate")).id
    work.layers.append([])
    for n in range(WIDTH):
        task = await old.create_task(FLEET, WORKSPACE, f"layer 0 task {n}", depends_on=[work.gate])
        work.layers[0].append(task.id)
        work.created_through[task.id] = "old"
        work.depends_on[task.id] = [work.gate]
    return claimed.attempt


async def create_layers(clients: dict[str, AsyncWorkEngineClient], work: Workload) -> None:
    """Layers 1.. alternate between the replicas task by task, and each task waits on two of
    the layer before, so dependencies cross replicas both ways."""
    for layer in range(1, LAYERS):
        work.layers.append([])
        for n in range(WIDTH):
            through = ("old", "new")[(n + layer) % 2]
            before = work.layers[layer - 1]
            needs = [before[n], before[(n + 1) % WIDTH]]
            task = await clients[through].create_task(
                FLEET, WORKSPACE, f"layer {layer} task {n}", depends_on=needs
            )
            work.layers[layer].append(task.id)
            work.created_through[task.id] = through
            work.depends_on[task.id] = needs


async def start_daemons(
    releases: dict[str, Release], targets: dict[str, str], replica: str
) -> dict[str, Daemon]:
    """A daemon of each release, connected to `replica` ("old" or "new"), by name."""
    daemons = {}
    for code, release in releases.items():
        name = f"{code}-daemon-on-{replica}"
        command = release.daemon(
            targets[replica], name, "--orchestrator", FLEET, "--wait", "1", "--work-seconds", "0.02"
        )
        daemons[name] = await Daemon.start(command, env=release.env())
    await asyncio.gather(*(daemon.ready() for daemon in daemons.values()))
    return daemons


async def stop_daemons(daemons: dict[str, Daemon]) -> dict[str, DaemonRun]:
    """SIGTERM: each finishes what it holds, ends its claim's wait and exits."""
    for daemon in daemons.values():
        daemon.signal_group(signal.SIGTERM)
    runs = await asyncio.gather(*(daemon.result(30) for daemon in daemons.values()))
    return dict(zip(daemons, runs, strict=True))


async def serve(release: Release, database_url: str, servers: list[ServeProcess]) -> str:
    server = release.serve(database_url)
    servers.append(server)
    return await asyncio.to_thread(server.wait_listening)


def expected_kinds(task: str, work: Workload) -> list[int]:
    """The live events of one fleet task, in order, for a watch opened after the first layer."""
    if task == work.handoff:
        return [Kind.TASK_EVENT_KIND_COMPLETED]  # its start and progress came before the watch
    created = [] if task in work.layers[0] else [Kind.TASK_EVENT_KIND_CREATED]
    return [*created, Kind.TASK_EVENT_KIND_UNBLOCKED, *LIVE]


def check_daemons(runs: dict[str, DaemonRun], work: Workload) -> dict[str, str]:
    """Each daemon exited cleanly and did some of the work; together they completed every
    layered task exactly once, with its first attempt. Returns who completed each task."""
    completed_by: dict[str, str] = {}
    reports: Counter[str] = Counter()
    for name, run in runs.items():
        assert run.returncode == 0, f"{name}:\n{run.stderr}"
        assert run.lines, f"{name} completed nothing:\n{run.stderr}"
        for line in run.lines:
            assert line["attempt"] == 1, (name, line)
            reports[line["task"]] += 1
            completed_by[line["task"]] = name
    assert [task for task, count in reports.items() if count > 1] == []
    assert set(reports) == set(work.layered())
    # Dependencies crossed replicas both ways: a completion through one released a task
    # created through the other.
    crossings = {
        (completed_by[need].rsplit("-on-", 1)[1], work.created_through[task])
        for task, needs in work.depends_on.items()
        for need in needs
        if need in completed_by
    }
    assert {("old", "new"), ("new", "old")} <= crossings
    return completed_by


async def check_tasks(
    clients: dict[str, AsyncWorkEngineClient], work: Workload, completed_by: dict[str, str]
) -> None:
    """Every task DONE, by one attempt recorded under the identity that ran it."""
    tasks = [task async for task in clients["new"].list_tasks(orchestrator_id=FLEET)]
    assert len(tasks) == WARM_UP + 1 + LAYERS * WIDTH
    assert {task.status for task in tasks} == {task_pb2.TASK_STATUS_DONE}
    assert (await clients["old"].get_task(work.gate)).status == task_pb2.TASK_STATUS_CANCELLED
    ran = {**dict.fromkeys(work.warm_up, "warm-up"), work.handoff: "handoff", **completed_by}
    for task_id, identity in ran.items():
        attempts = await clients["old"].get_task_attempts(task_id)
        completed = task_pb2.ATTEMPT_OUTCOME_COMPLETED
        assert [(a.attempt, a.identity, a.outcome) for a in attempts] == [(1, identity, completed)], task_id


def check_watchers(watchers: dict[str, Watcher], work: Workload) -> None:
    """Each watch saw every event of every task once, in order, whichever replica made it;
    the two saw the same events."""
    fleet = [work.handoff, *work.layered()]
    for replica, watcher in watchers.items():
        assert watcher.snapshot == {work.handoff, *work.layers[0]}, replica
        cursors = [event.cursor for event in watcher.events]
        assert cursors == sorted(set(cursors)), replica
        assert cursors[0] > watcher.snapshot_cursor, replica
        kinds: dict[str, list[int]] = {task: [] for task in fleet}
        for event in watcher.events:
            kinds[event.task.id].append(event.kind)
        assert kinds == {task: expected_kinds(task, work) for task in fleet}, replica
        progress = [e.progress for e in watcher.events if e.kind == Kind.TASK_EVENT_KIND_PROGRESS]
        assert progress == [50] * LAYERS * WIDTH, replica
    after_new_opened = [e for e in watchers["old"].events if e.cursor > watchers["new"].snapshot_cursor]
    assert [event_view(e) for e in after_new_opened] == [event_view(e) for e in watchers["new"].events]


async def replay(client: AsyncWorkEngineClient, after: int, count: int) -> list[EventView]:
    """The first `count` events of the fleet after cursor `after`, from the log."""
    events = []
    stream = cast(
        AsyncGenerator[task_pb2.TaskEvent, None],
        client.watch_task_progress(orchestrator_id=FLEET, after_cursor=after),
    )
    async with contextlib.aclosing(stream):  # ends the server's stream at the break
        async for event in stream:
            events.append(event_view(event))
            if len(events) == count:
                break
    return events


async def check_replays(clients: dict[str, AsyncWorkEngineClient], watchers: dict[str, Watcher]) -> None:
    """What each watch received live is what the log replays, through the other replica."""
    for watched, other in (("old", "new"), ("new", "old")):
        live = [event_view(event) for event in watchers[watched].events]
        assert await replay(clients[other], watchers[watched].snapshot_cursor, len(live)) == live


async def check_statistics(clients: dict[str, AsyncWorkEngineClient]) -> None:
    """Both releases count every task once, from the same rollup."""
    total = WARM_UP + 1 + LAYERS * WIDTH
    old = await clients["old"].get_execution_stats(FLEET)
    new = await clients["new"].get_execution_stats(FLEET)
    for stats in (old, new):
        assert (stats.total_tasks, stats.completed_tasks, stats.failed_tasks) == (total, total, 0)
        assert [(c.status, c.count) for c in stats.by_status] == [(task_pb2.TASK_STATUS_DONE, total)]
    assert list(old.by_priority) == list(new.by_priority)
    assert (old.p50_completion_seconds, old.p95_completion_seconds) == (
        new.p50_completion_seconds,
        new.p95_completion_seconds,
    )
    assert old.average_completion_seconds == pytest.approx(new.average_completion_seconds)


async def watch(client: AsyncWorkEngineClient, watching: list[asyncio.Task[None]]) -> Watcher:
    """A watch of the fleet, once its snapshot (the handoff and the first layer) is in."""
    watcher = Watcher(client, expected=1 + LAYERS * WIDTH)
    watching.append(asyncio.create_task(watcher.run(snapshot_size=1 + WIDTH)))
    await asyncio.wait_for(watcher.snapshot_taken.wait(), 30)
    return watcher


async def upgrade(
    releases: dict[str, Release],
    database_url: str,
    servers: list[ServeProcess],
    daemons: dict[str, Daemon],
    watching: list[asyncio.Task[None]],
) -> None:
    targets = {"old": await serve(releases["old"], database_url, servers)}  # migrates to its head
    work = Workload()
    async with AsyncWorkEngineClient(targets["old"]) as old:
        handoff_attempt = await before_the_upgrade(old, work)
        watchers = {"old": await watch(old, watching)}
        daemons.update(await start_daemons(releases, targets, "old"))
        # This code's migrations, while the old replica serves, its daemons long-poll and its
        # watch is open.
        await asyncio.to_thread(releases["new"].migrate, database_url)
        targets["new"] = await serve(releases["new"], database_url, servers)
        async with AsyncWorkEngineClient(targets["new"]) as new:
            clients = {"old": old, "new": new}
            watchers["new"] = await watch(new, watching)
            await create_layers(clients, work)
            daemons.update(await start_daemons(releases, targets, "new"))
            await new.complete_task(work.handoff, handoff_attempt)  # started through the old one
            await new.cancel_task(work.gate, "open the gate")  # the first layer becomes ready
            await asyncio.wait_for(asyncio.gather(*watching), 60)
            completed_by = check_daemons(await stop_daemons(daemons), work)
            await check_tasks(clients, work, completed_by)
            check_watchers(watchers, work)
            await check_replays(clients, watchers)
            await check_statistics(clients)
        await check_history_grouping(database_url, completed_by)


async def check_history_grouping(database_url: str, completed_by: dict[str, str]) -> None:
    """The previous release starts attempts without what groups them with similar work
    (migration 0008): the trigger fills it in, so this code's contexts recall them too."""
    async with await psycopg.AsyncConnection.connect(database_url) as connection:
        cursor = await connection.execute(
            "SELECT count(*) FROM task_attempts WHERE tag_key IS NULL OR workspace_id IS NULL"
        )
        ungrouped = await cursor.fetchone()
    assert any(name.endswith("-on-old") for name in completed_by.values()), completed_by
    assert ungrouped == (0,)


async def test_a_replica_of_the_previous_release_and_one_of_this_code_share_a_daemon_workload(
    previous: Release, empty_database_url: str
) -> None:
    releases = {"old": previous, "new": THIS_RELEASE}
    servers: list[ServeProcess] = []
    daemons: dict[str, Daemon] = {}
    watching: list[asyncio.Task[None]] = []
    try:
        async with asyncio.timeout(120):
            await upgrade(releases, empty_database_url, servers, daemons, watching)
        for server in servers:
            assert await asyncio.to_thread(server.terminate) == 0, "".join(server.lines)
    finally:
        for task in watching:
            task.cancel()
        await asyncio.gather(*watching, return_exceptions=True)
        for daemon in daemons.values():
            daemon.kill()
        for server in servers:
            server.kill()
    for server in servers:
        assert logged_errors(server) == [], "".join(server.lines)
