"""Statistics: GetExecutionStats over 1,000,000 finished tasks, p50.

    python -m bench.stats                          # 1,000,000 finished tasks
    python -m bench.stats --tasks 100000 --calls 20

One orchestrator with `--tasks` DONE (90 %) and FAILED (10 %) tasks created over 30 days,
seeded with set-based SQL. `--calls` GetExecutionStats calls without a time range (the whole
history, the worst case) after one warm-up call, one at a time; then the same with the last
day as the range. The statistics come from the rollup the tasks' triggers maintain (migration
0005); the seed's contributions are folded into it before the server starts, as a running
server's background fold does within seconds. The EXPLAIN (ANALYZE, BUFFERS) of the statement
the RPC runs (`execution_rollup`) shows where the time goes.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from bench import seed
from bench.explain import explain
from bench.measure import Figure, percentile
from bench.runner import arguments, run_repeatedly
from bench.server import served
from workengine.store.statements import source
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc


def seed_finished(database_url: str, count: int) -> str:
    orchestrator_id = f"stats-{uuid.uuid4().hex[:8]}"
    with seed.connect(database_url) as conn:
        seed.orchestrator(conn, orchestrator_id)
        step = 250_000  # one statement per step keeps memory modest
        for first in range(1, count + 1, step):
            seed.finished_tasks(conn, orchestrator_id, min(step, count - first + 1), first=first)
        conn.execute(source("fold_execution_deltas"))
        seed.analyze(conn)
    return orchestrator_id


async def latencies(target: str, request: pb.GetExecutionStatsRequest, calls: int, total: int) -> list[float]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.WorkEngineServiceStub(channel)
        measured = []
        for index in range(calls + 1):
            began = time.perf_counter()
            response = await stub.GetExecutionStats(request, timeout=120)
            if index:
                measured.append((time.perf_counter() - began) * 1000)
            if not request.HasField("start_time") and response.total_tasks != total:
                raise RuntimeError(f"stats counted {response.total_tasks} tasks, seeded {total}")
        return measured


def run_once(
    database_url: str, orchestrator_id: str, total: int, calls: int, plans: dict[str, str]
) -> list[Figure]:
    whole = pb.GetExecutionStatsRequest(orchestrator_id=orchestrator_id)
    start = timestamp_pb2.Timestamp()
    day_ago = datetime.now(UTC) - timedelta(days=1)
    start.FromDatetime(day_ago)
    last_day = pb.GetExecutionStatsRequest(orchestrator_id=orchestrator_id, start_time=start)
    with served(database_url) as server:
        everything = asyncio.run(latencies(server.target, whole, calls, total))
        recent = asyncio.run(latencies(server.target, last_day, calls, total))
        peak = server.peak_rss_mb()
    params: dict[str, Any] = {"orchestrator_id": orchestrator_id, "start_time": None, "end_time": None}
    plans["execution_rollup, whole history"], _ = asyncio.run(
        explain(database_url, "execution_rollup", params)
    )
    params["start_time"] = day_ago
    plans["execution_rollup, last day"], _ = asyncio.run(explain(database_url, "execution_rollup", params))
    return [
        Figure(
            "5 statistics",
            f"GetExecutionStats p50, {total:,} finished tasks, whole history",
            statistics.median(everything),
            "ms",
            target="<=100",
            notes="p99 {p99:.0f} ms; server peak RSS {peak:.0f} MB",
            extras={"p99": percentile(everything, 0.99), "peak": peak},
        ),
        Figure(
            "5 statistics",
            "GetExecutionStats p50, same, last day only",
            statistics.median(recent),
            "ms",
            target="<=100",
            notes="p99 {p99:.0f} ms",
            extras={"p99": percentile(recent, 0.99)},
        ),
    ]


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--tasks", type=int, default=1_000_000, help="finished tasks")
    parser.add_argument("--calls", type=int, default=5, help="measured calls per run")
    args = parser.parse_args()
    plans: dict[str, str] = {}
    run_repeatedly(
        args,
        lambda url: seed_finished(url, args.tasks),
        lambda url, orchestrator_id, _: run_once(url, orchestrator_id, args.tasks, args.calls, plans),
        plans,
    )


if __name__ == "__main__":
    main()
