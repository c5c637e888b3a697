"""Execution history at scale: ClaimNextTask p50/p99 with history on and off, at 1,000, 10,000
and 1,000,000 finished tasks.

    python -m bench.history                                  # the three sizes
    python -m bench.history --sizes 1000,10000 --calls 100   # finished tasks per orchestrator

Each size is its own orchestrator whose history holds that many finished tasks, seeded with
set-based SQL: 8 workspaces (the first holds 40 % of the work), 5 tags arrays making 4 tag
sets (["python", "sql"] and ["sql", "python", "sql"] are one set), 1 to 3 attempts per task,
and attempts ending COMPLETED (78 %), FAILED (10 %), LEASE_EXPIRED (7 %), BLOCKED (3 %) or
CANCELLED (2 %), 2 s to 8 min long, over 30 days, some with an output excerpt, some with
lessons. A peer orchestrator has a tenth as many in the same workspaces. The supply claimed is
TODO tasks of the first workspace with the ["python", "sql"] set, a quarter of them retried
(an earlier attempt, a month ago), so every claim's three similarity windows are full (the worst
case: 100 attempts read from each) and its own attempts are read too.

One `workengine serve` process per run answers ClaimNextTask one call at a time, `--calls`
measured calls per case after 20 warm-up calls, the cases of a size interleaved call by call:
history on (history_limit unset: 5; and 50) and off (0). Each claimed task is then completed
(not measured), so the supply stays ready, and its attempt moved 60 days back: the bench's own
completions would otherwise fill the windows within 100 claims, at every size alike, where the
seeded history is what is measured (they are at most `--repeat` x 3 x (20 + `--calls`)
attempts per size, older than anything the windows reach). Sizes are interleaved run by run,
each run starting at the next size. Reported: the client-observed RPC p50/p99 (an upper bound
on the server-side time; target: p50 at the largest size <= 2x p50 at the smallest, history
on), the `execution_memory` statement's own execution time (median of EXPLAIN ANALYZE runs, for
a retried supply task) and its EXPLAIN (ANALYZE, BUFFERS) plan at each size, which shows the
index walks (the notes count any Seq Scan on task_attempts).
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import psycopg

from bench import seed
from bench.explain import explain
from bench.measure import Figure, percentile
from bench.runner import arguments, run_repeatedly
from bench.server import served
from workengine.domain import history
from workengine.store.database import libpq_url
from workengine.store.runner import array_text
from workengine.store.statements import source
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

DEFAULT_SIZES = "1000,10000,1000000"
WARMUP_CALLS = 20
EXPLAIN_RUNS = 15
# The cases, interleaved call by call: None leaves history_limit unset (the default, 5).
LIMITS: tuple[int | None, ...] = (None, 50, 0)
SEED_STEP = 250_000  # finished tasks per statement: keeps the database's memory modest
SUPPLY_TAGS = ("python", "sql")
SEQ_SCAN = re.compile(r"Seq Scan on task_attempts")
RESULT = task_pb2.TaskResult(output={"summary": "ok"})

# The finished tasks and their attempts, in one statement: g-th task's workspace, tag set and
# attempts' outcomes are functions of g; its creation is spread over 30 days.
HISTORY_SQL = """
WITH tag_sets AS MATERIALIZED (
    SELECT n, tags, tag_set_key(tags) AS tag_key
    FROM (VALUES (0, ARRAY['python', 'sql']), (1, ARRAY['sql', 'python', 'sql']), (2, ARRAY['python']),
                 (3, ARRAY['docs']), (4, CAST('{}' AS text[]))) AS s (n, tags)
), shaped AS MATERIALIZED (
    SELECT g, %(p)s || g AS id, ts.tags, ts.tag_key,
           %(w)s || CASE WHEN mod(g, 5) < 2 THEN 0 ELSE 1 + mod(g / 5, 7) END AS workspace_id,
           CASE mod(g, 50) WHEN 7 THEN ARRAY['LEASE_EXPIRED', 'FAILED', 'COMPLETED']
                WHEN 3 THEN ARRAY['BLOCKED', 'COMPLETED'] WHEN 21 THEN ARRAY['BLOCKED', 'COMPLETED']
                WHEN 11 THEN ARRAY['FAILED', 'COMPLETED'] WHEN 15 THEN ARRAY['LEASE_EXPIRED', 'COMPLETED']
                WHEN 33 THEN ARRAY['LEASE_EXPIRED', 'COMPLETED'] WHEN 17 THEN ARRAY['LEASE_EXPIRED', 'FAILED']
                WHEN 9 THEN ARRAY['FAILED'] WHEN 29 THEN ARRAY['FAILED'] WHEN 41 THEN ARRAY['FAILED']
                WHEN 13 THEN ARRAY['CANCELLED'] ELSE ARRAY['COMPLETED'] END AS outcomes,
           now() - interval '30 days' * (mod(g::bigint * 7919, 1000003) / 1000003.0) AS created_at
    FROM generate_series(%(first)s::int, %(last)s::int) AS g
    JOIN tag_sets ts ON ts.n = mod(g / 3, 5)
), attempts AS MATERIALIZED (
    SELECT s.*, k AS attempt, s.outcomes[k] AS outcome, k = cardinality(s.outcomes) AS last,
           s.created_at + make_interval(mins => 20 * (k - 1), secs => 1) AS started_at,
           s.created_at + make_interval(mins => 20 * (k - 1), secs => 1 + CASE
               WHEN s.outcomes[k] = 'LEASE_EXPIRED' THEN 300
               ELSE 2 + power(mod(g * 31 + k * 977, 100), 2) / 20.0 END) AS ended_at,
           CASE s.outcomes[k] WHEN 'FAILED' THEN 'tests failed: ' || 1 + mod(g, 7) || ' of 120'
                WHEN 'BLOCKED' THEN 'waiting for review' WHEN 'LEASE_EXPIRED' THEN 'lease expired'
                WHEN 'CANCELLED' THEN 'superseded' ELSE '' END AS reason,
           CASE WHEN s.outcomes[k] = 'COMPLETED' AND mod(g, 3) = 0
                THEN '{"files_changed":' || mod(g, 40) || ',"summary":"task ' || g || ' done"}'
                WHEN s.outcomes[k] = 'FAILED' AND mod(g / 50, 2) = 0
                THEN '{"failing":["test_' || mod(g, 97) || '"]}' ELSE '' END AS output_excerpt,
           CASE WHEN s.outcomes[k] = 'COMPLETED' AND mod(g, 7) = 0
                THEN ARRAY['run the migrations before the tests']
                WHEN s.outcomes[k] = 'FAILED' AND mod(g / 50, 3) = 0
                THEN ARRAY['the staging API rate-limits at 10 requests/s', 'retry with a smaller batch']
                ELSE CAST('{}' AS text[]) END AS lessons
    FROM shaped s, generate_series(1, cardinality(s.outcomes)) AS k
), inserted AS (
    INSERT INTO tasks (id, orchestrator_id, workspace_id, title, priority, tags, status, status_reason,
                       attempt, progress, result, failure_count, lease_expiry_count,
                       created_at, updated_at, started_at, completed_at)
    SELECT id, %(o)s, workspace_id, 'task ' || g, 1 + mod(g, 4), tags,
           CASE outcome WHEN 'COMPLETED' THEN 'DONE' ELSE outcome END, reason, attempt,
           CASE outcome WHEN 'COMPLETED' THEN 100 ELSE 50 END,
           jsonb_build_object('output', CAST(COALESCE(NULLIF(output_excerpt, ''), '{}') AS jsonb),
                              'error', reason, 'artifacts', '[]'::jsonb, 'metrics', '{}'::jsonb),
           cardinality(array_positions(outcomes, 'FAILED')),
           cardinality(array_positions(outcomes, 'LEASE_EXPIRED')),
           created_at, ended_at, started_at, ended_at
    FROM attempts WHERE last
)
INSERT INTO task_attempts (task_id, attempt, identity, started_at, ended_at, outcome, reason,
                           orchestrator_id, workspace_id, tag_key, output_excerpt, lessons)
SELECT id, attempt, 'daemon-' || mod(g + attempt, 16), started_at, ended_at, outcome, reason,
       %(o)s, workspace_id, tag_key, output_excerpt, lessons
FROM attempts
"""

# The TODO tasks claimed: the first workspace, the supply's tag set (in either order), mixed
# priorities and deadlines; a quarter (of every priority) were tried before (FAILED, BLOCKED or
# LEASE_EXPIRED), a month ago: before the seeded history, so that the windows read it, not them.
SUPPLY_SQL = """
WITH supply AS MATERIALIZED (
    SELECT g, %(p)s || g AS id, retried,
           (ARRAY['FAILED', 'BLOCKED', 'LEASE_EXPIRED'])[1 + mod(g, 3)] AS outcome,
           now() - make_interval(days => CASE WHEN retried THEN 31 ELSE 0 END, secs => g) AS created_at
    FROM generate_series(1, %(n)s::int) AS g, LATERAL (SELECT mod(g / 4, 4) = 0 AS retried) AS r
), inserted AS (
    INSERT INTO tasks (id, orchestrator_id, workspace_id, title, priority, due_at, tags, status,
                       attempt, failure_count, lease_expiry_count, created_at, updated_at)
    SELECT id, %(o)s, %(w)s, 'queued ' || g, 1 + mod(g, 4),
           CASE mod(g, 5) WHEN 0 THEN NULL WHEN 1 THEN now() - make_interval(mins => 1 + mod(g, 5000))
                WHEN 2 THEN now() + make_interval(secs => 60 + mod(g, 600))
                WHEN 3 THEN now() + make_interval(hours => 30 + mod(g, 40))
                ELSE now() + make_interval(days => 4 + mod(g, 60)) END,
           CASE WHEN mod(g, 2) = 0 THEN ARRAY['python', 'sql'] ELSE ARRAY['sql', 'python'] END, 'TODO',
           CASE WHEN retried THEN 1 ELSE 0 END,
           CASE WHEN retried AND outcome = 'FAILED' THEN 1 ELSE 0 END,
           CASE WHEN retried AND outcome = 'LEASE_EXPIRED' THEN 1 ELSE 0 END,
           created_at, created_at
    FROM supply
)
INSERT INTO task_attempts (task_id, attempt, identity, started_at, ended_at, outcome, reason,
                           orchestrator_id, workspace_id, tag_key, output_excerpt, lessons)
SELECT id, 1, 'daemon-' || mod(g, 16), created_at + interval '1 minute',
       created_at + make_interval(mins => 1, secs => 5 + mod(g, 290)), outcome,
       CASE outcome WHEN 'FAILED' THEN 'tests failed' WHEN 'BLOCKED' THEN 'waiting for review'
            ELSE 'lease expired' END,
       %(o)s, %(w)s, tag_set_key(ARRAY['python', 'sql']),
       CASE WHEN outcome = 'FAILED' THEN '{"failing":["test_login"]}' ELSE '' END,
       CASE WHEN outcome = 'FAILED' THEN ARRAY['the login test needs the fixtures loaded']
            ELSE CAST('{}' AS text[]) END
FROM supply WHERE retried
"""

# The bench's own completions leave the windows (they would fill them within 100 claims, at
# every size alike): their attempt moves to before the seeded history, which every claim reads.
BACKDATE_SQL = """
UPDATE task_attempts
SET started_at = started_at - interval '60 days', ended_at = ended_at - interval '60 days'
WHERE task_id = %s AND attempt = %s
"""

# The attempts each similarity window of a supply task can read (at most its 100 newest).
WINDOWS_SQL = """
SELECT count(*) FILTER (WHERE orchestrator_id = %(o)s AND tag_key = tag_set_key(%(tags)s::text[])),
       count(*) FILTER (WHERE orchestrator_id = %(o)s), count(*)
FROM task_attempts WHERE workspace_id = %(w)s AND ended_at IS NOT NULL
"""


@dataclass(frozen=True)
class Size:
    finished: int
    orchestrator_id: str = ""

    @property
    def label(self) -> str:
        return f"{self.finished:,} finished tasks"

    @property
    def workspace_id(self) -> str:
        """The workspace of the supply (and of 40 % of the history)."""
        return f"{self.orchestrator_id}-w0"

    @property
    def explained_task(self) -> str:
        """A supply task tried before: its own attempts are read too."""
        return f"{self.orchestrator_id}-q1"


def parse_sizes(text: str) -> list[Size]:
    return [Size(int(n)) for n in text.split(",")]


def supply_needed(calls: int, repeat: int) -> int:
    """Enough TODO tasks for every claim of every run, with a margin."""
    return repeat * len(LIMITS) * (WARMUP_CALLS + calls) + 100


def finished_history(conn: seed.Connection, orchestrator_id: str, workspaces: str, count: int) -> None:
    """`count` finished tasks of `orchestrator_id` (ids `<orchestrator_id>-f<g>`) and their
    attempts, in workspaces `<workspaces>0` to `<workspaces>7`, SEED_STEP per statement."""
    for first in range(1, count + 1, SEED_STEP):
        last = min(first + SEED_STEP - 1, count)
        params = {"o": orchestrator_id, "p": f"{orchestrator_id}-f", "w": workspaces}
        conn.execute(HISTORY_SQL, params | {"first": first, "last": last})


def seed_size(database_url: str, size: Size, supply: int) -> Size:
    orchestrator_id = f"hist-{size.finished}-{uuid.uuid4().hex[:6]}"
    seeded = Size(size.finished, orchestrator_id)
    began = time.perf_counter()
    with seed.connect(database_url) as conn:
        peer = f"{orchestrator_id}-peer"
        for orchestrator in (orchestrator_id, peer):
            seed.orchestrator(conn, orchestrator)
        finished_history(conn, orchestrator_id, f"{orchestrator_id}-w", size.finished)
        finished_history(conn, peer, f"{orchestrator_id}-w", max(1, size.finished // 10))
        params = {"o": orchestrator_id, "p": f"{orchestrator_id}-q", "w": seeded.workspace_id}
        conn.execute(SUPPLY_SQL, params | {"n": supply})
        # The statistics rollup's pending deltas folded now, as a running server does in the
        # background: the server must not fold a million of them while it is measured.
        conn.execute(source("fold_execution_deltas"))
        seed.analyze(conn)
        conn.execute("VACUUM ANALYZE task_attempts")
        windows = conn.execute(WINDOWS_SQL, params | {"tags": list(SUPPLY_TAGS)}).fetchone()
    print(
        f"seeded {size.label} ({orchestrator_id}) and {supply:,} TODO in "
        f"{time.perf_counter() - began:.0f} s; ended attempts in the supply's similarity "
        f"groups (each window reads the newest 100): {' / '.join(f'{n:,}' for n in windows or ())}",
        flush=True,
    )
    return seeded


def memory_params(size: Size, history_limit: int) -> dict[str, Any]:
    """execution_memory's binds for a supply task, as HistoryStore.memory binds them."""
    return {
        "task_id": size.explained_task,
        "orchestrator_id": size.orchestrator_id,
        "workspace_id": size.workspace_id,
        "tags": array_text(SUPPLY_TAGS),
        "history_limit": history_limit,
        "window": history.WINDOW,
        "before": datetime.now(UTC),  # a claimed task's start: just now
    }


@dataclass
class Claims:
    """One size's measured claims: latencies (ms) and history lengths per case, and the
    estimate's groups (finished attempts per window) of the last claim with history."""

    latencies: dict[int | None, list[float]] = field(default_factory=dict)
    entries: dict[int | None, list[int]] = field(default_factory=dict)
    windows: tuple[int, ...] = ()


def claim_request(orchestrator_id: str, limit: int | None) -> pb.ClaimNextTaskRequest:
    request = pb.ClaimNextTaskRequest(orchestrator_id=orchestrator_id, identity="bench")
    if limit is not None:
        request.history_limit = limit
    return request


async def claims(target: str, database_url: str, orchestrator_id: str, calls: int) -> Claims:
    found = Claims({limit: [] for limit in LIMITS}, {limit: [] for limit in LIMITS})
    requests = {limit: claim_request(orchestrator_id, limit) for limit in LIMITS}
    async with (
        grpc.aio.insecure_channel(target) as channel,
        await psycopg.AsyncConnection.connect(libpq_url(database_url), autocommit=True) as conn,
    ):
        stub = pb_grpc.WorkEngineServiceStub(channel)
        for index in range(WARMUP_CALLS + calls):
            for limit in LIMITS:
                began = time.perf_counter()
                response = await stub.ClaimNextTask(requests[limit])
                elapsed = (time.perf_counter() - began) * 1000
                if not response.HasField("context"):
                    raise RuntimeError(f"{orchestrator_id}: the supply ran dry")
                context = response.context
                if index >= WARMUP_CALLS:
                    found.latencies[limit].append(elapsed)
                    found.entries[limit].append(len(context.history))
                if limit != 0:
                    found.windows = tuple(group.finished for group in context.estimate.groups)
                await stub.CompleteTask(
                    pb.CompleteTaskRequest(
                        task_id=context.task.id,
                        attempt=response.attempt,
                        status=pb.COMPLETION_STATUS_COMPLETED,
                        result=RESULT,
                    )
                )
                await conn.execute(BACKDATE_SQL, (context.task.id, response.attempt))
    return found


def case_name(limit: int | None) -> str:
    return {None: "history on (5, the default)", 0: "history off (0)"}.get(limit, f"history {limit}")


@dataclass(frozen=True)
class Measured:
    size: Size
    claims: Claims
    sql_ms: dict[int, float]
    seq_scans: int


def measure_size(target: str, database_url: str, size: Size, calls: int, plans: dict[str, str]) -> Measured:
    found = asyncio.run(claims(target, database_url, size.orchestrator_id, calls))
    sql_ms: dict[int, float] = {}
    seq_scans = 0
    for limit in (history.DEFAULT_HISTORY_LIMIT, history.MAX_HISTORY_LIMIT):
        plan, sql_ms[limit] = asyncio.run(
            explain(database_url, "execution_memory", memory_params(size, limit), EXPLAIN_RUNS)
        )
        seq_scans += len(SEQ_SCAN.findall(plan))
        if limit == history.DEFAULT_HISTORY_LIMIT:
            plans[f"execution_memory, {size.label}, history_limit {limit}"] = plan
    return Measured(size, found, sql_ms, seq_scans)


def claim_figures(measured: Sequence[Measured]) -> list[Figure]:
    first = measured[0]
    figures = []
    for m in measured:
        off = statistics.median(m.claims.latencies[0])
        for limit in LIMITS:
            found = m.claims.latencies[limit]
            p50 = statistics.median(found)
            extras = {"p99": percentile(found, 0.99), "entries": statistics.median(m.claims.entries[limit])}
            notes = "p99 {p99:.2f} ms; {entries:.0f} entries"
            if limit != 0:
                extras["over_off"] = p50 - off
                notes += "; {over_off:+.2f} ms over history off"
            figures.append(
                Figure(
                    "7 history",
                    f"ClaimNextTask p50, {m.size.label}, {case_name(limit)}",
                    p50,
                    "ms",
                    statistics.median(first.claims.latencies[limit]),
                    f"p50 at {first.size.label}",
                    "ratio<=2" if limit != 0 else "",
                    notes=notes,
                    extras=extras,
                )
            )
    return figures


def sql_figures(measured: Sequence[Measured]) -> list[Figure]:
    first = measured[0]
    default, most = history.DEFAULT_HISTORY_LIMIT, history.MAX_HISTORY_LIMIT
    figures = []
    for m in measured:
        windows = (*m.claims.windows, 0, 0, 0)[:3]
        figures.append(
            Figure(
                "7 history",
                f"execution_memory SQL, {m.size.label}, history_limit {default}",
                m.sql_ms[default],
                "ms",
                first.sql_ms[default],
                f"at {first.size.label}",
                notes=f"history_limit {most}: " + "{sql_most:.2f} ms; windows' finished attempts "
                "{w1:.0f} / {w2:.0f} / {w3:.0f}; Seq Scans on task_attempts: {seq:.0f}",
                extras={
                    "sql_most": m.sql_ms[most],
                    "w1": windows[0],
                    "w2": windows[1],
                    "w3": windows[2],
                    "seq": m.seq_scans,
                },
            )
        )
    return figures


def run_once(
    database_url: str, sizes: list[Size], calls: int, plans: dict[str, str], index: int = 0
) -> list[Figure]:
    """One run; the `index`-th starts at the `index`-th size (the first size measured on a new
    server is not always the same), figures in the sizes' order."""
    start = index % len(sizes)
    with served(database_url) as server:
        found = {
            size.finished: measure_size(server.target, database_url, size, calls, plans)
            for size in sizes[start:] + sizes[:start]
        }
    measured = [found[size.finished] for size in sizes]
    return claim_figures(measured) + sql_figures(measured)


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated finished-task counts")
    parser.add_argument("--calls", type=int, default=200, help="measured calls per case and size")
    args = parser.parse_args()
    plans: dict[str, str] = {}
    supply = supply_needed(args.calls, args.repeat)
    run_repeatedly(
        args,
        lambda url: [seed_size(url, size, supply) for size in parse_sizes(args.sizes)],
        lambda url, sizes, index: run_once(url, sizes, args.calls, plans, index),
        plans,
    )


if __name__ == "__main__":
    main()
