"""Selection at scale: SelectNextTask p50/p99 with 100, 10,000 and 1,000,000 tasks in the table.

    python -m bench.selection                                  # the three sizes
    python -m bench.selection --sizes 100:100,100000:10000     # total:ready pairs

Each size is its own orchestrator, seeded with set-based SQL: `ready` TODO tasks (mixed
priorities, deadlines in every bucket, tags); of the rest, 5 % BLOCKED on dependencies, 1 % IN_PROGRESS
(what they depend on), the others DONE or FAILED. One `workengine serve` process answers
`--calls` SelectNextTask calls per size, one at a time, after 20 warm-up calls; sizes are
interleaved run by run. Reported: the client-observed RPC p50/p99 (an upper bound on the
server-side time), the statement's own execution time (median of EXPLAIN ANALYZE runs),
and the EXPLAIN (ANALYZE, BUFFERS) plans of `select_next_task` and `claim_next_task` (in a
transaction rolled back) at each size, which show the index probes.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass

import grpc

from bench import seed
from bench.explain import explain, selection_params
from bench.measure import Figure, percentile
from bench.runner import arguments, run_repeatedly
from bench.server import served
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

DEFAULT_SIZES = "100:100,10000:1000,1000000:100000"
WARMUP_CALLS = 20
EXPLAIN_RUNS = 15


@dataclass(frozen=True)
class Size:
    total: int
    ready: int
    orchestrator_id: str = ""

    @property
    def label(self) -> str:
        return f"{self.total:,} tasks, {self.ready:,} ready"


def parse_sizes(text: str) -> list[Size]:
    sizes = []
    for pair in text.split(","):
        total, ready = (int(n) for n in pair.split(":"))
        if ready > total:
            raise SystemExit(f"--sizes: {pair} has more ready than total tasks")
        sizes.append(Size(total, ready))
    return sizes


def seed_size(database_url: str, size: Size) -> Size:
    orchestrator_id = f"sel-{size.total}-{uuid.uuid4().hex[:6]}"
    rest = size.total - size.ready
    blocked = rest // 20
    running = max(1, rest // 100) if blocked else rest // 100
    finished = rest - blocked - running
    with seed.connect(database_url) as conn:
        seed.orchestrator(conn, orchestrator_id)
        seed.ready_tasks(conn, orchestrator_id, size.ready)
        if finished:
            seed.finished_tasks(conn, orchestrator_id, finished)
        running_ids = [f"{orchestrator_id}-r{n}" for n in range(running)]
        if running_ids:
            seed.running_tasks(conn, orchestrator_id, running_ids)
        if blocked:
            seed.blocked_on_each(conn, orchestrator_id, f"{orchestrator_id}-b", running_ids, blocked)
        seed.analyze(conn)
    return Size(size.total, size.ready, orchestrator_id)


async def latencies(target: str, orchestrator_id: str, calls: int) -> list[float]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.WorkEngineServiceStub(channel)
        request = pb.SelectNextTaskRequest(orchestrator_id=orchestrator_id)
        measured = []
        for index in range(WARMUP_CALLS + calls):
            began = time.perf_counter()
            response = await stub.SelectNextTask(request)
            elapsed = (time.perf_counter() - began) * 1000
            if not response.HasField("task"):
                raise RuntimeError(f"{orchestrator_id}: no task selected")
            if index >= WARMUP_CALLS:
                measured.append(elapsed)
        return measured


def run_once(
    database_url: str, sizes: list[Size], calls: int, peak_rss: list[float], plans: dict[str, str]
) -> list[Figure]:
    measured: list[tuple[Size, float, float, float, float]] = []
    with served(database_url) as server:
        for size in sizes:
            found = asyncio.run(latencies(server.target, size.orchestrator_id, calls))
            plan, sql_ms = asyncio.run(
                explain(
                    database_url, "select_next_task", selection_params(size.orchestrator_id), EXPLAIN_RUNS
                )
            )
            plans[f"select_next_task, {size.label}"] = plan
            # The daemon's path: the same ranking, then lock and start the winner (rolled back).
            claim_plan, claim_ms = asyncio.run(
                explain(database_url, "claim_next_task", selection_params(size.orchestrator_id), EXPLAIN_RUNS)
            )
            plans[f"claim_next_task, {size.label}"] = claim_plan
            measured.append((size, statistics.median(found), percentile(found, 0.99), sql_ms, claim_ms))
        peak_rss.append(server.peak_rss_mb())
    smallest = measured[0][1]
    figures = []
    for size, p50, p99, sql_ms, claim_ms in measured:
        figures.append(
            Figure(
                "3 selection",
                f"SelectNextTask p50, {size.label}",
                p50,
                "ms",
                smallest,
                f"p50 at {measured[0][0].ready:,} ready",
                "ratio<=2",
                notes="p99 {p99:.2f} ms",
                extras={"p99": p99},
            )
        )
        figures.append(
            Figure(
                "3 selection",
                f"select_next_task SQL, {size.label}",
                sql_ms,
                "ms",
                target="<=5",
                notes="claim_next_task SQL {claim:.2f} ms",
                extras={"claim": claim_ms},
            )
        )
    return figures


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated total:ready pairs")
    parser.add_argument("--calls", type=int, default=200, help="measured calls per size")
    args = parser.parse_args()
    rss: list[float] = []
    plans: dict[str, str] = {}
    run_repeatedly(
        args,
        lambda url: [seed_size(url, size) for size in parse_sizes(args.sizes)],
        lambda url, sizes, _: run_once(url, sizes, args.calls, rss, plans),
        plans,
        lambda: f"; server peak RSS {max(rss):.0f} MB",
    )


if __name__ == "__main__":
    main()
