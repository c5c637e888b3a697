"""Transport efficiency: GetTask calls/s against an empty method on the same server and client.

    python -m bench.transport                      # 8 concurrent callers, 5 s per side
    python -m bench.transport --concurrency 1,8 --seconds 10

The server is bench/echo_server.py: the real WorkEngine server with one extra service,
`bench.Echo/Empty` (google.protobuf.Empty in and out). One channel, `--concurrency` callers
looping for `--seconds` after a 1 s warm-up; the two sides alternate on the same server. The
ratio GetTask/Empty is the share of gRPC's own throughput the engine keeps when it reads one
task from the database and converts it. The same on bench/floor_server.py (its GetTask runs
the engine's statement on psycopg and answers with the id alone; no interceptor, no
conversion) is the stack's floor: the most any server on it keeps here.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf import empty_pb2

from bench import echo_server, seed
from bench.measure import Figure
from bench.runner import arguments, run_repeatedly
from bench.server import served
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

WARMUP_SECONDS = 1.0
COMMAND = [sys.executable, "-m", "bench.echo_server"]
FLOOR = [sys.executable, "-m", "bench.floor_server"]


async def calls_per_second(call: Callable[[], Awaitable[object]], concurrency: int, seconds: float) -> float:
    loop = asyncio.get_running_loop()
    measure_from = loop.time() + WARMUP_SECONDS
    stop_at = measure_from + seconds
    counted = 0

    async def caller() -> None:
        nonlocal counted
        while loop.time() < stop_at:
            await call()
            if measure_from <= loop.time() < stop_at:
                counted += 1

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return counted / seconds


async def measure(target: str, task_id: str, concurrency: int, seconds: float) -> tuple[float, float]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.WorkEngineServiceStub(channel)
        empty = channel.unary_unary(
            echo_server.METHOD,
            request_serializer=empty_pb2.Empty.SerializeToString,
            response_deserializer=empty_pb2.Empty.FromString,
        )
        request = pb.GetTaskRequest(task_id=task_id)

        async def get_task() -> object:
            return await stub.GetTask(request)

        async def call_empty() -> object:
            return await empty(empty_pb2.Empty())

        engine = await calls_per_second(get_task, concurrency, seconds)
        reference = await calls_per_second(call_empty, concurrency, seconds)
        return engine, reference


def run_once(database_url: str, task_id: str, concurrencies: list[int], seconds: float) -> list[Figure]:
    figures = []
    for command, case, target in ((COMMAND, "", "ratio>=0.7"), (FLOOR, ", the stack's floor", "")):
        with served(database_url, command=command) as server:
            for concurrency in concurrencies:
                engine, reference = asyncio.run(measure(server.target, task_id, concurrency, seconds))
                figures.append(
                    Figure(
                        "2 transport",
                        f"GetTask, {concurrency} callers{case}",
                        engine,
                        "calls/s",
                        reference,
                        "empty method",
                        target,
                    )
                )
    return figures


def seed_task(database_url: str) -> str:
    orchestrator_id = f"transport-{uuid.uuid4().hex[:8]}"
    with seed.connect(database_url) as conn:
        seed.orchestrator(conn, orchestrator_id)
        seed.ready_tasks(conn, orchestrator_id, 100)
    return f"{orchestrator_id}-t1"


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--concurrency", default="8", help="comma-separated concurrent callers")
    parser.add_argument("--seconds", type=float, default=5, help="measured seconds per side")
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    run_repeatedly(
        args, seed_task, lambda url, task_id, _: run_once(url, task_id, concurrencies, args.seconds)
    )


if __name__ == "__main__":
    main()
