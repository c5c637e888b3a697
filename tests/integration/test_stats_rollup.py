"""The statistics rollup (migration 0005) against the exact computation over `tasks`.

Random tasks around day and hour boundaries, changed every way the engine and its operators
change them (claims, completions, cancels, FAILED -> retried -> DONE, deletes, created_at moved),
with some deltas folded and some not, compared for many ranges with the statistics computed
straight from the tasks table: counts and the average exactly, percentiles within
PERCENTILE_PRECISION.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from workengine.domain.model import ExecutionStats, Priority, TaskStatus
from workengine.domain.statistics import PERCENTILE_PRECISION, SMALLEST_BUCKETED_SECONDS, histogram_percentile
from workengine.engine import WorkEngine
from workengine.store.database import Database

BASE = datetime(2030, 1, 1, tzinfo=UTC)  # a day boundary in the middle of the data
STATUSES = ("TODO", "IN_PROGRESS", "BLOCKED", "DONE", "FAILED", "CANCELLED")

EXACT = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE status = 'DONE') AS completed,
       count(*) FILTER (WHERE status = 'FAILED') AS failed,
       avg(extract(epoch FROM completed_at - started_at)) FILTER (WHERE status = 'DONE') AS average,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - started_at))
           FILTER (WHERE status = 'DONE') AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - started_at))
           FILTER (WHERE status = 'DONE') AS p95,
       (SELECT coalesce(json_object_agg(status, n), '{}') FROM (
           SELECT status, count(*) AS n FROM tasks
           WHERE orchestrator_id = %(o)s AND created_at >= %(s)s AND created_at < %(e)s GROUP BY status) s
       ) AS by_status,
       (SELECT coalesce(json_object_agg(priority, n), '{}') FROM (
           SELECT priority, count(*) AS n FROM tasks
           WHERE orchestrator_id = %(o)s AND created_at >= %(s)s AND created_at < %(e)s GROUP BY priority) p
       ) AS by_priority
FROM tasks
WHERE orchestrator_id = %(o)s AND created_at >= %(s)s AND created_at < %(e)s
"""


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[WorkEngine]:
    engine = WorkEngine(Database(database_url, pool_size=2))  # not started: folds when told
    yield engine
    await engine.close()


def random_duration(rng: random.Random) -> float:
    return rng.choice((0.0, 0.0004, 0.001, 0.0123, 1.0)) if rng.random() < 0.1 else 10 ** rng.uniform(-3, 4.5)


def seed(connection: psycopg.Connection[Any], rng: random.Random, orchestrator: str, count: int) -> None:
    rows = []
    for index in range(count):
        # Minutes around BASE, often exactly on an hour.
        minutes = rng.randrange(-36 * 60, 36 * 60)
        if rng.random() < 0.2:
            minutes -= minutes % 60
        created = BASE + timedelta(minutes=minutes, seconds=rng.choice((0, 0, rng.uniform(0, 60))))
        status = rng.choice(STATUSES)
        started = created + timedelta(seconds=5) if status not in ("TODO", "BLOCKED") else None
        finished = status in ("DONE", "FAILED", "CANCELLED")
        completed = started + timedelta(seconds=random_duration(rng)) if finished and started else None
        # A running task holds a lease (the schema refuses one without).
        lease = (created + timedelta(hours=1), 3600) if status == "IN_PROGRESS" else (None, None)
        rows.append(
            (
                f"{orchestrator}-{index}",
                orchestrator,
                status,
                rng.randint(1, 4),
                created,
                started,
                completed,
                *lease,
            )
        )
    half = count // 2
    with connection.cursor() as cursor:
        # One by one (each its own statement) and then the rest in one set-based statement.
        cursor.executemany(
            "INSERT INTO tasks (id, orchestrator_id, workspace_id, title, status, priority, created_at,"
            " started_at, completed_at, lease_expires_at, attempt_lease_seconds)"
            " VALUES (%s, %s, 'w', 't', %s, %s, %s, %s, %s, %s, %s)",
            rows[:half],
        )
        cursor.execute(
            "INSERT INTO tasks (id, orchestrator_id, workspace_id, title, status, priority, created_at,"
            " started_at, completed_at, lease_expires_at, attempt_lease_seconds)"
            " SELECT id, o, 'w', 't', s, p, c, st, co, le, ls FROM unnest("
            "%s::text[], %s::text[], %s::text[], %s::smallint[], %s::timestamptz[], %s::timestamptz[],"
            " %s::timestamptz[], %s::timestamptz[], %s::integer[]) AS r(id, o, s, p, c, st, co, le, ls)",
            [list(column) for column in zip(*rows[half:], strict=True)],
        )


def churn(connection: psycopg.Connection[Any], rng: random.Random, orchestrator: str) -> None:
    """Changes tasks the ways the engine does (and a few it does not), one statement each."""
    ids = [
        r[0] for r in connection.execute("SELECT id FROM tasks WHERE orchestrator_id = %s", (orchestrator,))
    ]
    for task_id in rng.sample(ids, len(ids) // 3):
        action = rng.randrange(6)
        if action == 0:  # claim, then finish
            connection.execute(
                "UPDATE tasks SET status = 'IN_PROGRESS', attempt = attempt + 1, started_at = now(),"
                " lease_expires_at = now() + interval '1 hour', attempt_lease_seconds = 3600"
                " WHERE id = %s AND status = 'TODO'",
                (task_id,),
            )
            connection.execute(
                "UPDATE tasks SET status = %s, completed_at = started_at + make_interval(secs => %s)"
                " WHERE id = %s AND status = 'IN_PROGRESS'",
                (rng.choice(("DONE", "FAILED")), random_duration(rng), task_id),
            )
        elif action == 1:  # cancel
            connection.execute(
                "UPDATE tasks SET status = 'CANCELLED', completed_at = now()"
                " WHERE id = %s AND status NOT IN ('DONE', 'CANCELLED')",
                (task_id,),
            )
        elif action == 2:  # FAILED (or anything) -> retried -> DONE: counted once, as DONE
            connection.execute(
                "UPDATE tasks SET status = 'TODO', completed_at = NULL WHERE id = %s", (task_id,)
            )
            connection.execute(
                "UPDATE tasks SET status = 'IN_PROGRESS', started_at = now() - interval '1 hour',"
                " lease_expires_at = now() + interval '1 hour', attempt_lease_seconds = 3600"
                " WHERE id = %s",
                (task_id,),
            )
            connection.execute(
                "UPDATE tasks SET status = 'DONE', completed_at = started_at + make_interval(secs => %s)"
                " WHERE id = %s",
                (random_duration(rng), task_id),
            )
        elif action == 3:  # progress only: not a counted change
            connection.execute("UPDATE tasks SET progress = 7, updated_at = now() WHERE id = %s", (task_id,))
        elif action == 4:
            connection.execute(
                "UPDATE tasks SET created_at = created_at + make_interval(mins => %s), priority = %s"
                " WHERE id = %s",
                (rng.randrange(-300, 300), rng.randint(1, 4), task_id),
            )
        else:
            connection.execute("DELETE FROM tasks WHERE id = %s", (task_id,))


def exact(
    connection: psycopg.Connection[Any], orchestrator: str, start: datetime | None, end: datetime | None
) -> Any:
    bounds = {
        "o": orchestrator,
        "s": start or datetime.min.replace(tzinfo=UTC),
        "e": end or datetime.max.replace(tzinfo=UTC),
    }
    with connection.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(EXACT, bounds).fetchone()


def assert_matches(got: ExecutionStats, want: Any) -> None:
    assert (got.total, got.completed, got.failed) == (want["total"], want["completed"], want["failed"])
    assert dict((s.value, n) for s, n in got.by_status) == want["by_status"]
    assert dict((str(int(p)), n) for p, n in got.by_priority) == want["by_priority"]
    assert got.average_seconds == pytest.approx(float(want["average"] or 0.0), rel=1e-9, abs=1e-9)
    for value, exact_value in ((got.p50_seconds, want["p50"]), (got.p95_seconds, want["p95"])):
        exact_value = float(exact_value or 0.0)
        tolerance = PERCENTILE_PRECISION * exact_value + SMALLEST_BUCKETED_SECONDS / 2 + 1e-9
        assert abs(value - exact_value) <= tolerance, (value, exact_value)


def ranges(rng: random.Random) -> list[tuple[datetime | None, datetime | None]]:
    found: list[tuple[datetime | None, datetime | None]] = [
        (None, None),
        (BASE, None),
        (None, BASE),
        (BASE - timedelta(days=1), BASE + timedelta(days=1)),  # whole days only
        (BASE - timedelta(hours=3), BASE + timedelta(hours=2)),  # whole hours only
        (BASE + timedelta(minutes=10), BASE + timedelta(minutes=50)),  # inside one hour
        (BASE + timedelta(minutes=10), BASE + timedelta(minutes=70)),  # two partial hours
    ]
    for _ in range(25):
        start = BASE + timedelta(minutes=rng.randrange(-40 * 60, 40 * 60), seconds=rng.uniform(0, 60))
        end = start + timedelta(minutes=rng.randrange(1, 40 * 60))
        found.append((start if rng.random() < 0.9 else None, end if rng.random() < 0.9 else None))
    return found


@pytest.mark.parametrize("seed_value", [1, 2])
async def test_rollup_matches_the_exact_statistics(
    engine: WorkEngine, database_url: str, seed_value: int
) -> None:
    rng = random.Random(seed_value)
    with psycopg.connect(database_url, autocommit=True) as connection:
        for orchestrator in ("ada", "bob"):
            connection.execute(
                "INSERT INTO orchestrators (id, display_name, status) VALUES (%s, %s, 'ONLINE')",
                (orchestrator, orchestrator),
            )
        seed(connection, rng, "ada", 400)
        seed(connection, rng, "bob", 50)
        assert await engine.stats.fold() > 0
        churn(connection, rng, "ada")
        checks = ranges(rng)
        for start, end in checks[:10]:  # deltas pending
            assert_matches(
                await engine.stats.execution_stats("ada", start, end), exact(connection, "ada", start, end)
            )
        await engine.stats.fold()
        assert await engine.stats.fold() == 0
        churn(connection, rng, "ada")  # some folded, some pending
        for start, end in checks:
            assert_matches(
                await engine.stats.execution_stats("ada", start, end), exact(connection, "ada", start, end)
            )
        assert_matches(
            await engine.stats.execution_stats("bob", None, None), exact(connection, "bob", None, None)
        )


async def test_a_task_finishing_twice_counts_once(engine: WorkEngine, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO orchestrators (id, display_name, status) VALUES ('ada', 'ada', 'ONLINE')"
        )
        connection.execute(
            "INSERT INTO tasks (id, orchestrator_id, workspace_id, title, status, priority, started_at,"
            " lease_expires_at, attempt_lease_seconds) VALUES ('t', 'ada', 'w', 't', 'IN_PROGRESS', 2, %s,"
            " now() + interval '1 hour', 3600)",
            (BASE,),
        )
        finish = "UPDATE tasks SET status = %s, started_at = %s, completed_at = %s WHERE id = 't'"
        connection.execute(finish, ("FAILED", BASE, BASE + timedelta(seconds=5)))
        await engine.stats.fold()
        connection.execute("UPDATE tasks SET status = 'TODO', completed_at = NULL WHERE id = 't'")
        connection.execute(finish, ("DONE", BASE + timedelta(seconds=60), BASE + timedelta(seconds=100)))
    stats = await engine.stats.execution_stats("ada", None, None)
    assert (stats.total, stats.completed, stats.failed) == (1, 1, 0)
    assert stats.by_status == ((TaskStatus.DONE, 1),)
    assert stats.by_priority == ((Priority.MEDIUM, 1),)
    assert stats.average_seconds == pytest.approx(40.0)
    assert stats.p50_seconds == pytest.approx(40.0, rel=PERCENTILE_PRECISION)


def test_histogram_percentile_interpolates_like_percentile_cont() -> None:
    assert histogram_percentile([], 0.5) == 0.0
    # Bucket 0 stands for 0.5 ms: two equal values give that value at any fraction.
    assert histogram_percentile([(0, 2)], 0.95) == pytest.approx(0.0005)
    lower, upper = histogram_percentile([(1, 1)], 0.5), histogram_percentile([(17, 1)], 0.5)
    assert upper == pytest.approx(2 * lower)
    assert histogram_percentile([(1, 1), (17, 1)], 0.5) == pytest.approx((lower + upper) / 2)
