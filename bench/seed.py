"""Set-based seeding: benchmark data written with INSERT ... SELECT generate_series, not RPCs.

Every row keeps the engine's invariants: a BLOCKED-on-dependencies task has its
`task_dependencies` edges, its `depends_on` array and `unmet_dependency_count`; an
IN_PROGRESS task has attempt 1 and a start time; a finished one has its times and progress.
"""

from __future__ import annotations

import psycopg

from workengine.store.migrate import migrate

Connection = psycopg.Connection[tuple[object, ...]]

# Mixed priorities (1..4), deadlines in every bucket (overdue, today, within 72 h, later,
# none) and tags, as functions of the row number g.
READY_COLUMNS = """
    1 + (g %% 4),
    CASE g %% 5 WHEN 0 THEN NULL
               WHEN 1 THEN now() - make_interval(mins => 1 + g %% 5000)
               WHEN 2 THEN now() + make_interval(secs => 60 + g %% 600)
               WHEN 3 THEN now() + make_interval(hours => 30 + g %% 40)
               ELSE now() + make_interval(days => 4 + g %% 60) END,
    CASE g %% 3 WHEN 0 THEN '{}'::text[] WHEN 1 THEN ARRAY['python'] ELSE ARRAY['python', 'sql'] END
"""


def connect(database_url: str) -> Connection:
    return psycopg.connect(database_url, autocommit=True)


def prepare_schema(database_url: str) -> None:
    migrate(database_url)


def orchestrator(conn: Connection, orchestrator_id: str) -> None:
    conn.execute(
        "INSERT INTO orchestrators (id, display_name, status) VALUES (%s, 'bench', 'ONLINE')"
        " ON CONFLICT (id) DO NOTHING",
        (orchestrator_id,),
    )


def ready_tasks(conn: Connection, orchestrator_id: str, count: int, *, first: int = 1) -> None:
    """`count` TODO tasks, numbered from `first`, spread over 100 workspaces."""
    conn.execute(
        f"""
        INSERT INTO tasks (id, orchestrator_id, workspace_id, title, priority, due_at, tags,
                           status, created_at)
        SELECT %(o)s || '-t' || g, %(o)s, %(o)s || '-w' || (g %% 100), 'task ' || g, {READY_COLUMNS},
               'TODO', now() - make_interval(secs => g)
        FROM generate_series(%(first)s::int, %(last)s::int) g
        """,
        {"o": orchestrator_id, "first": first, "last": first + count - 1},
    )


def finished_tasks(conn: Connection, orchestrator_id: str, count: int, *, first: int = 1) -> None:
    """`count` tasks that ran: 90 per cent DONE, 10 per cent FAILED, 1 to 600 s long, created over 30 days."""
    conn.execute(
        f"""
        INSERT INTO tasks (id, orchestrator_id, workspace_id, title, priority, due_at, tags,
                           status, attempt, progress, created_at, started_at, completed_at)
        SELECT %(o)s || '-f' || g, %(o)s, %(o)s || '-w' || (g %% 100), 'task ' || g, {READY_COLUMNS},
               CASE WHEN g %% 10 = 0 THEN 'FAILED' ELSE 'DONE' END, 1,
               CASE WHEN g %% 10 = 0 THEN 50 ELSE 100 END,
               c, c + interval '1 second', c + make_interval(secs => 2 + g %% 600)
        FROM generate_series(%(first)s::int, %(last)s::int) g,
             LATERAL (SELECT now() - interval '30 days' * ((g %% 100000) / 100000.0) AS c) AS created
        """,
        {"o": orchestrator_id, "first": first, "last": first + count - 1},
    )


def running_tasks(conn: Connection, orchestrator_id: str, ids: list[str]) -> None:
    """IN_PROGRESS tasks, attempt 1, holding an hour's lease, with the given ids."""
    conn.execute(
        """
        INSERT INTO tasks (id, orchestrator_id, workspace_id, title, priority, status, attempt,
                           started_at, lease_expires_at, attempt_lease_seconds)
        SELECT id, %(o)s, %(o)s || '-w0', 'running ' || id, 2, 'IN_PROGRESS', 1, now(),
               now() + interval '1 hour', 3600
        FROM unnest(%(ids)s::text[]) AS id
        """,
        {"o": orchestrator_id, "ids": ids},
    )


def blocked_on_each(
    conn: Connection, orchestrator_id: str, prefix: str, dependencies: list[str], count: int
) -> None:
    """`count` BLOCKED tasks, the g-th depending on dependencies[g mod len]: one edge each."""
    conn.execute(
        """
        INSERT INTO tasks (id, orchestrator_id, workspace_id, title, priority, status, depends_on,
                           unmet_dependency_count)
        SELECT %(p)s || g, %(o)s, %(o)s || '-w' || (g %% 100), 'blocked ' || g, 1 + (g %% 4), 'BLOCKED',
               ARRAY[(%(deps)s::text[])[1 + g %% cardinality(%(deps)s::text[])]], 1
        FROM generate_series(1, %(n)s::int) g
        """,
        {"o": orchestrator_id, "p": prefix, "deps": dependencies, "n": count},
    )
    conn.execute(
        """
        INSERT INTO task_dependencies (task_id, depends_on_id)
        SELECT id, depends_on[1] FROM tasks WHERE id LIKE %(p)s || '%%' AND orchestrator_id = %(o)s
        """,
        {"o": orchestrator_id, "p": prefix},
    )


def blocked_on_all(conn: Connection, orchestrator_id: str, task_id: str, dependencies: list[str]) -> None:
    """One BLOCKED task that depends on every one of `dependencies`."""
    conn.execute(
        """
        INSERT INTO tasks (id, orchestrator_id, workspace_id, title, priority, status, depends_on,
                           unmet_dependency_count)
        VALUES (%(id)s, %(o)s, %(o)s || '-w0', 'waits for all', 2, 'BLOCKED', %(deps)s::text[],
                cardinality(%(deps)s::text[]))
        """,
        {"o": orchestrator_id, "id": task_id, "deps": dependencies},
    )
    conn.execute(
        "INSERT INTO task_dependencies (task_id, depends_on_id) SELECT %s, unnest(%s::text[])",
        (task_id, dependencies),
    )


def analyze(conn: Connection) -> None:
    conn.execute("VACUUM ANALYZE tasks")
    conn.execute("VACUUM ANALYZE task_dependencies")
