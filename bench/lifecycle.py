"""Lifecycle throughput: N daemons looping claim -> one progress update -> complete, beside pgbench.

    python -m bench.lifecycle                          # 8 and 32 daemons, embedded PostgreSQL
    python -m bench.lifecycle --daemons 8 --seconds 10 --database-url postgresql://...

Engine side: `workengine serve`, N asyncio daemons in this process (over 4 channels), each
looping ClaimNextTask -> UpdateTaskProgress -> CompleteTask(COMPLETED) for `--seconds` after a
1 s warm-up; again with WORKENGINE_METRICS=0, for what the metrics cost. Reference side, in
the same run: pgbench with N clients replaying the SQL those
three RPCs run (see bench/pgbench.py). Between them, the stack's floor: the same daemons
against bench/floor_server.py, which runs those statements on grpc.aio and psycopg and does
nothing else, so floor/pgbench is the most any server on this stack reaches here, and
engine/floor the share of it the engine keeps. Every side claims from its own orchestrator,
seeded with the same ready tasks (mixed priorities, deadlines and tags).
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import threading
import time
import uuid
from dataclasses import dataclass

import grpc
from google.protobuf import struct_pb2

from bench import seed
from bench.cpu import database_cpu_seconds
from bench.measure import Figure
from bench.pgbench import RESULT, lifecycle_script, run_pgbench
from bench.runner import arguments, run_repeatedly
from bench.server import Served, served
from workengine.store.statements import source
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

CHANNELS = 4
WARMUP_SECONDS = 1.0
FLOOR = [sys.executable, "-m", "bench.floor_server"]
# Enough ready tasks that neither side runs dry: more than the fastest side can finish.
TASKS_PER_SECOND = 1_500


def seed_orchestrator(database_url: str, seconds: float, tasks: int | None = None) -> str:
    """An orchestrator with enough ready tasks for `seconds` of the fastest side (or `tasks`)."""
    orchestrator_id = f"life-{uuid.uuid4().hex[:8]}"
    if tasks is None:
        tasks = int((seconds + WARMUP_SECONDS + 2) * TASKS_PER_SECOND)
    with seed.connect(database_url) as conn:
        seed.orchestrator(conn, orchestrator_id)
        seed.ready_tasks(conn, orchestrator_id, tasks)
        # The statistics rollup's pending deltas (the seed's, the previous side's) folded now:
        # a server folds them in the background, and must not do the other side's during its run.
        conn.execute(source("fold_execution_deltas"))
        conn.execute("ANALYZE tasks")
    return orchestrator_id


async def daemons(target: str, orchestrator_id: str, count: int, seconds: float) -> tuple[int, float]:
    """Runs `count` daemons; returns lifecycles completed in the measured window, and its length."""
    channels = [grpc.aio.insecure_channel(target) for _ in range(CHANNELS)]
    stubs = [pb_grpc.WorkEngineServiceStub(c) for c in channels]
    output = struct_pb2.Struct()
    output.update(RESULT.output)
    result = task_pb2.TaskResult(output=output)
    loop = asyncio.get_running_loop()
    measure_from = loop.time() + WARMUP_SECONDS
    stop_at = measure_from + seconds
    counted = 0

    async def daemon(stub: pb_grpc.WorkEngineServiceStub) -> None:
        nonlocal counted
        while loop.time() < stop_at:
            claimed = await stub.ClaimNextTask(pb.ClaimNextTaskRequest(orchestrator_id=orchestrator_id))
            if not claimed.HasField("context"):
                raise RuntimeError("the queue ran dry: seed more tasks")
            task_id = claimed.context.task.id
            await stub.UpdateTaskProgress(
                pb.UpdateTaskProgressRequest(task_id=task_id, attempt=claimed.attempt, progress=50)
            )
            await stub.CompleteTask(
                pb.CompleteTaskRequest(
                    task_id=task_id,
                    attempt=claimed.attempt,
                    status=pb.COMPLETION_STATUS_COMPLETED,
                    result=result,
                )
            )
            if measure_from <= loop.time() < stop_at:
                counted += 1

    try:
        await asyncio.gather(*(daemon(stubs[i % CHANNELS]) for i in range(count)))
    finally:
        for channel in channels:
            await channel.close()
    return counted, seconds


@dataclass(frozen=True)
class EngineSide:
    lifecycles_per_second: float
    # CPU ms per lifecycle (the warm-up's share included)
    server_ms: float
    client_ms: float
    database_ms: float


def run_engine(server: Served, database_url: str, clients: int, seconds: float) -> EngineSide:
    orchestrator_id = seed_orchestrator(database_url, seconds)
    server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
    database_cpu = database_cpu_seconds(database_url)
    counted, elapsed = asyncio.run(daemons(server.target, orchestrator_id, clients, seconds))
    database_cpu = database_cpu_seconds(database_url) - database_cpu
    server_cpu, client_cpu = server.cpu_seconds() - server_cpu, time.process_time() - client_cpu
    total = max(1.0, counted * (seconds + WARMUP_SECONDS) / seconds)  # CPU covers the warm-up too
    return EngineSide(
        counted / elapsed, 1000 * server_cpu / total, 1000 * client_cpu / total, 1000 * database_cpu / total
    )


@dataclass(frozen=True)
class ReferenceSide:
    lifecycles_per_second: float
    # CPU ms per lifecycle
    database_ms: float
    pgbench_ms: float


def run_reference(database_url: str, clients: int, seconds: float) -> ReferenceSide:
    """pgbench's rate, and the CPU it and the database spend per lifecycle. The database's is
    sampled inside the run (from 1 s in to 0.5 s before the end): pgbench's backends take
    their CPU time with them when they exit."""
    orchestrator_id = seed_orchestrator(database_url, seconds)
    window = (1.0, max(1.5, seconds - 0.5))
    samples: list[float] = []

    def sample() -> None:
        began = time.monotonic()
        for at in window:
            time.sleep(max(0.0, began + at - time.monotonic()))
            samples.append(database_cpu_seconds(database_url))

    sampler = threading.Thread(target=sample)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    sampler.start()
    result = run_pgbench(database_url, lifecycle_script(orchestrator_id), clients, seconds)
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    pgbench_cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    rate = result.lifecycles_per_second
    database_ms = 1000 * (samples[1] - samples[0]) / max(1.0, rate * (window[1] - window[0]))
    return ReferenceSide(rate, database_ms, 1000 * pgbench_cpu / max(1, result.lifecycles))


def _cpu_notes(side: EngineSide, prefix: str) -> dict[str, float]:
    return {
        f"{prefix}server": side.server_ms,
        f"{prefix}client": side.client_ms,
        f"{prefix}database": side.database_ms,
    }


def run_once(
    database_url: str, clients_list: list[int], seconds: float, peak_rss: list[float]
) -> list[Figure]:
    figures = []
    for clients in clients_list:
        with served(database_url) as server:
            engine = run_engine(server, database_url, clients, seconds)
            peak_rss.append(server.peak_rss_mb())
        with served(database_url, command=FLOOR) as server:
            floor = run_engine(server, database_url, clients, seconds)
        with served(database_url, env=dict(os.environ, WORKENGINE_METRICS="0")) as server:
            unmetered = run_engine(server, database_url, clients, seconds)
        reference = run_reference(database_url, clients, seconds)
        figures += [
            Figure(
                "1 lifecycle",
                f"{clients} daemons",
                engine.lifecycles_per_second,
                "lifecycles/s",
                reference.lifecycles_per_second,
                "pgbench, same SQL",
                "ratio>=0.5",
                notes=(
                    "CPU ms per lifecycle: server {server:.2f}, bench client {client:.2f}, database "
                    "{database:.2f}; pgbench side: database {reference_database:.2f}, pgbench {pgbench:.2f}"
                ),
                extras={
                    **_cpu_notes(engine, ""),
                    "reference_database": reference.database_ms,
                    "pgbench": reference.pgbench_ms,
                },
            ),
            Figure(
                "1 lifecycle",
                f"{clients} daemons, the stack's floor (bench/floor_server.py)",
                floor.lifecycles_per_second,
                "lifecycles/s",
                reference.lifecycles_per_second,
                "pgbench, same SQL",
                notes=(
                    "engine/floor {engine_share:.2f}; floor CPU ms per lifecycle: server "
                    "{floor_server:.2f}, bench client {floor_client:.2f}, database {floor_database:.2f}"
                ),
                extras={
                    **_cpu_notes(floor, "floor_"),
                    "engine_share": engine.lifecycles_per_second / max(floor.lifecycles_per_second, 1e-9),
                },
            ),
            Figure(
                "1 lifecycle",
                f"{clients} daemons, metrics on (the default) against WORKENGINE_METRICS=0",
                engine.lifecycles_per_second,
                "lifecycles/s",
                unmetered.lifecycles_per_second,
                "metrics off",
                notes="server CPU ms per lifecycle: metrics on {server:.3f}, off {unmetered_server:.3f}",
                extras={**_cpu_notes(engine, ""), **_cpu_notes(unmetered, "unmetered_")},
            ),
        ]
    return figures


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--daemons", default="8,32", help="comma-separated daemon counts")
    parser.add_argument("--seconds", type=float, default=8, help="measured seconds per side")
    args = parser.parse_args()
    clients = [int(c) for c in args.daemons.split(",")]
    rss: list[float] = []
    run_repeatedly(
        args,
        lambda url: None,
        lambda url, _, __: run_once(url, clients, args.seconds, rss),
        summary=lambda: f"; server peak RSS {max(rss):.0f} MB",
    )


if __name__ == "__main__":
    main()
