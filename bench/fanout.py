"""Dependency fan-out: completing a task with N dependents; completing one of N dependencies.

    python -m bench.fanout                         # 1,000 and 10,000
    python -m bench.fanout --sizes 10000,100000

Two cases per size, each seeded fresh with set-based SQL before every run:

- **N dependents**: one IN_PROGRESS task that N BLOCKED tasks depend on (one edge each).
  CompleteTask on it must release all N (every one comes back in `unblocked_task_ids`).
- **1 of N dependencies**: one BLOCKED task depending on N IN_PROGRESS tasks; CompleteTask on
  one of them decrements its counter, and releases nothing.

Reported: the CompleteTask RPC time, and (first run only, since it doubles the work) the
EXPLAIN (ANALYZE, BUFFERS) of its `release_dependents` statement, run first in a transaction
that is rolled back. The release is one statement however many dependents there are (one
round trip); whether its work inside PostgreSQL is O(dependents) shows in the time per
dependent as N grows, and the plan shows why.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc

from bench import seed
from bench.explain import explain
from bench.measure import Figure
from bench.runner import arguments, run_repeatedly
from bench.server import served
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

# What the completion records before its release runs: the task's COMPLETED event, as the
# transaction's first (release_dependents releases only after it).
RECORD_COMPLETION = """
INSERT INTO task_events (position, task_id, orchestrator_id, workspace_id, kind, status, attempt, progress)
SELECT (pg_current_xact_id()::text::bigint << 20) + 1, id, orchestrator_id, workspace_id, 'COMPLETED',
       'DONE', attempt, 100
FROM tasks WHERE id = %(id)s
"""


def seed_dependents(database_url: str, count: int) -> str:
    """The task that `count` others wait for."""
    orchestrator_id = f"fan-{uuid.uuid4().hex[:8]}"
    parent = f"{orchestrator_id}-parent"
    with seed.connect(database_url) as conn:
        seed.orchestrator(conn, orchestrator_id)
        seed.running_tasks(conn, orchestrator_id, [parent])
        seed.blocked_on_each(conn, orchestrator_id, f"{orchestrator_id}-d", [parent], count)
        seed.analyze(conn)
    return parent


def seed_dependencies(database_url: str, count: int) -> str:
    """One of the `count` tasks that a single task waits for."""
    orchestrator_id = f"fan-{uuid.uuid4().hex[:8]}"
    dependencies = [f"{orchestrator_id}-dep{n}" for n in range(count)]
    with seed.connect(database_url) as conn:
        seed.orchestrator(conn, orchestrator_id)
        seed.running_tasks(conn, orchestrator_id, dependencies)
        seed.blocked_on_all(conn, orchestrator_id, f"{orchestrator_id}-waiter", dependencies)
        seed.analyze(conn)
    return dependencies[0]


async def complete(target: str, task_id: str) -> tuple[float, int]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.WorkEngineServiceStub(channel)
        began = time.perf_counter()
        response = await stub.CompleteTask(
            pb.CompleteTaskRequest(task_id=task_id, attempt=1, status=pb.COMPLETION_STATUS_COMPLETED),
            timeout=120,
        )
        return (time.perf_counter() - began) * 1000, len(response.unblocked_task_ids)


def measure(
    target: str, database_url: str, task_id: str, expect_unblocked: int, plans: dict[str, str] | None
) -> float:
    """The CompleteTask time (ms); with `plans`, first the EXPLAIN ANALYZE of its release."""
    if plans is not None:
        plans[task_id], _ = asyncio.run(
            explain(
                database_url,
                "release_dependents",
                {"id": task_id, "finished_seq": 1, "seq": 2, "event_kind": "UNBLOCKED", "event_message": ""},
                setup=RECORD_COMPLETION,
            )
        )
    rpc_ms, unblocked = asyncio.run(complete(target, task_id))
    if unblocked != expect_unblocked:
        raise RuntimeError(f"{task_id}: {unblocked} unblocked, expected {expect_unblocked}")
    return rpc_ms


def run_once(database_url: str, sizes: list[int], plans: dict[str, str] | None = None) -> list[Figure]:
    """One run; with `plans`, also the EXPLAIN ANALYZE of each release (slow: it runs it twice)."""
    figures = []
    found: dict[str, str] = {}
    with served(database_url) as server:
        for count in sizes:
            parent = seed_dependents(database_url, count)
            dependency = seed_dependencies(database_url, count)
            many = measure(server.target, database_url, parent, count, found if plans is not None else None)
            one = measure(server.target, database_url, dependency, 0, found if plans is not None else None)
            if plans is not None:
                plans[f"release_dependents, {count:,} dependents"] = found[parent]
                plans[f"release_dependents, 1 of {count:,} dependencies"] = found[dependency]
            figures.append(
                Figure(
                    "4 fan-out",
                    f"complete a task with {count:,} dependents",
                    many,
                    "ms",
                    notes="{per_dependent:.0f} µs per dependent",
                    extras={"per_dependent": 1000 * many / count},
                )
            )
            figures.append(Figure("4 fan-out", f"complete 1 of {count:,} dependencies", one, "ms"))
    if len(sizes) > 1:
        # O(dependents) means a flat cost per dependent as N grows.
        small, large = figures[0], figures[-2]
        figures.append(
            Figure(
                "4 fan-out",
                f"time per dependent, {sizes[-1]:,} vs {sizes[0]:,} dependents",
                1000 * large.engine / sizes[-1],
                "µs",
                1000 * small.engine / sizes[0],
                f"at {sizes[0]:,}",
                "ratio<=2",
            )
        )
    return figures


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated dependent counts")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    plans: dict[str, str] = {}
    run_repeatedly(
        args, lambda url: None, lambda url, _, index: run_once(url, sizes, None if index else plans), plans
    )


if __name__ == "__main__":
    main()
