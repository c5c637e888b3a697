"""Every benchmark of the suite runs, at a tiny size, against the test database: the suite cannot rot.

These check that the pieces work end to end (seeding, servers, pgbench, EXPLAIN, the table),
not the figures.
"""

from __future__ import annotations

import asyncio

import pytest

from bench import fanout, history, lifecycle, seed, selection, stats, transport
from bench.explain import explain, selection_params
from bench.measure import Figure, median_figures, table
from bench.pgbench import lifecycle_script, run_pgbench
from bench.server import served


def cases(figures: list[Figure]) -> list[str]:
    return [f.case for f in figures]


def test_lifecycle_engine_and_pgbench(database_url: str) -> None:
    peak: list[float] = []
    figures = lifecycle.run_once(database_url, [2], 0.5, peak)
    assert cases(figures) == [
        "2 daemons",
        "2 daemons, the stack's floor (bench/floor_server.py)",
        "2 daemons, metrics on (the default) against WORKENGINE_METRICS=0",
    ]
    assert all(f.engine > 0 and f.reference is not None and f.reference > 0 for f in figures)
    assert peak and peak[0] > 0


def test_pgbench_script_runs_the_lifecycle(database_url: str) -> None:
    with seed.connect(database_url) as conn:
        seed.orchestrator(conn, "pgb")
        seed.ready_tasks(conn, "pgb", 2_000)
    result = run_pgbench(database_url, lifecycle_script("pgb"), 2, 1)
    assert result.lifecycles > 0 and result.failed == 0
    with seed.connect(database_url) as conn:
        done = conn.execute("SELECT count(*) FROM tasks WHERE status = 'DONE'").fetchone()
        kinds = conn.execute("SELECT kind, count(*) FROM task_events GROUP BY kind").fetchall()
    assert done is not None and int(str(done[0])) >= result.lifecycles
    assert {kind for kind, _ in kinds} == {"STARTED", "PROGRESS", "COMPLETED"}


def test_the_floor_server_runs_every_lifecycle_to_done(database_url: str) -> None:
    """The floor is a bound only if it does the work: every claim progressed and completed."""
    orchestrator_id = lifecycle.seed_orchestrator(database_url, 0.5)
    with served(database_url, command=lifecycle.FLOOR) as server:
        counted, _ = asyncio.run(lifecycle.daemons(server.target, orchestrator_id, 2, 0.5))
    with seed.connect(database_url) as conn:
        statuses = {
            str(status): int(str(n))
            for status, n in conn.execute(
                "SELECT status, count(*) FROM tasks WHERE orchestrator_id = %s GROUP BY status",
                [orchestrator_id],
            )
        }
        kinds = {
            str(kind): int(str(n))
            for kind, n in conn.execute(
                "SELECT kind, count(*) FROM task_events WHERE orchestrator_id = %s GROUP BY kind",
                [orchestrator_id],
            )
        }
    assert counted > 0 and "IN_PROGRESS" not in statuses
    assert statuses["DONE"] >= counted
    assert kinds["STARTED"] == kinds["PROGRESS"] == kinds["COMPLETED"] == statuses["DONE"]


def test_transport(database_url: str) -> None:
    figures = transport.run_once(database_url, transport.seed_task(database_url), [2], 0.3)
    assert cases(figures) == ["GetTask, 2 callers", "GetTask, 2 callers, the stack's floor"]
    assert all(f.engine > 0 and f.reference is not None and f.reference > 0 for f in figures)


def test_selection_and_its_plan_uses_the_ready_index(database_url: str) -> None:
    sizes = [selection.seed_size(database_url, s) for s in selection.parse_sizes("10:10,200:20")]
    peak: list[float] = []
    plans: dict[str, str] = {}
    figures = selection.run_once(database_url, sizes, 3, peak, plans)
    assert len(figures) == 4 and all(f.engine > 0 for f in figures)
    assert all("tasks_ready_idx" in plan for plan in plans.values())


def test_fanout(database_url: str) -> None:
    plans: dict[str, str] = {}
    runs = [fanout.run_once(database_url, [5, 10], plans), fanout.run_once(database_url, [5, 10])]
    figures = median_figures(runs)
    assert cases(figures)[:2] == ["complete a task with 5 dependents", "complete 1 of 5 dependencies"]
    assert len(figures) == 5 and "release_dependents, 10 dependents" in plans


def test_stats(database_url: str) -> None:
    orchestrator_id = stats.seed_finished(database_url, 50)
    plans: dict[str, str] = {}
    figures = stats.run_once(database_url, orchestrator_id, 50, 1, plans)
    assert len(figures) == 2 and set(plans) == {
        "execution_rollup, whole history",
        "execution_rollup, last day",
    }
    assert "missed" not in table(figures)


def test_history_claims_read_full_windows_through_the_indexes(database_url: str) -> None:
    supply = history.supply_needed(2, 1)
    sizes = [history.seed_size(database_url, s, supply) for s in history.parse_sizes("600,1200")]
    plans: dict[str, str] = {}
    figures = history.run_once(database_url, sizes, 2, plans)
    assert len(figures) == 3 * 2 + 2 and all(f.engine > 0 for f in figures)
    # Every claim with history got a full one, from windows of 100 attempts (some BLOCKED or
    # CANCELLED: not counted as finished).
    assert [f.extras["entries"] for f in figures[:3]] == [5, 50, 0]
    assert all(f.extras["w3"] >= 80 and f.extras["seq"] == 0 for f in figures[6:])
    assert all("task_attempts_similar_idx" in plan for plan in plans.values())


def test_explain_reports_execution_time(database_url: str) -> None:
    with seed.connect(database_url) as conn:
        seed.orchestrator(conn, "ex")
        seed.ready_tasks(conn, "ex", 5)
    plan, milliseconds = asyncio.run(explain(database_url, "select_next_task", selection_params("ex"), 2))
    assert "Execution Time" in plan and milliseconds >= 0


@pytest.mark.parametrize(
    ("target", "engine", "reference", "met"),
    [
        ("ratio>=0.5", 5, 10, True),
        ("ratio>=0.5", 4, 10, False),
        ("ratio<=2", 3, 1, False),
        ("<=5", 5, None, True),
    ],
)
def test_targets(target: str, engine: float, reference: float | None, met: bool) -> None:
    assert Figure("b", "c", engine, "ms", reference, target=target).met is met


def test_medians_cover_references_and_extras() -> None:
    runs = [
        [Figure("b", "c", v, "ms", v * 2, notes="p99 {p99:.0f}", extras={"p99": v * 10})] for v in (1, 3, 2)
    ]
    (merged,) = median_figures(runs)
    assert (merged.engine, merged.reference, merged.extras) == (2, 4, {"p99": 20})
    assert "| p99 20 |" in table([merged])


def test_the_pgbench_script_binds_values_as_parameters_as_the_engine_does() -> None:
    # A constant in the statement's text would let PostgreSQL plan the reference's claim once,
    # where the engine's claim is planned on every execution.
    script = lifecycle_script("pgb")
    claim = script.lines[1]
    assert ":s1_due_froms" in claim and ":s1_orchestrator_id" in claim
    assert "'{" not in claim and "'pgb'" not in claim and "--" not in claim
    assert script.defines["s1_orchestrator_id"] == "pgb"
