"""Streaming benchmark: N WatchTaskProgress subscribers on one server, a producer posting progress.

    python -m bench.streaming                      # 100 and 1,000 subscribers, 200 updates/s
    python -m bench.streaming --database-url postgresql://postgres@127.0.0.1:5432/postgres

Each case starts its own `workengine serve` process (so its peak RSS is the server's alone),
opens N subscribers, each watching one task (`--fanout` subscribers per task), then posts
progress at a fixed rate round-robin over the tasks for `--seconds`. Latency runs from the
moment the producer sends UpdateTaskProgress (which commits before it answers) to the moment a
subscriber has the event: an upper bound on commit-to-receipt that includes the update's own
round trip. Every subscriber must receive every update of its task exactly once, in order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from google.protobuf import struct_pb2

from bench.server import fresh_database, served
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

CHANNELS = 10
WARMUP_SECONDS = 1.0
DRAIN_SECONDS = 10.0


@dataclass
class Case:
    subscribers: int
    fanout: int
    rate: float
    seconds: float

    @property
    def tasks(self) -> int:
        return max(1, self.subscribers // self.fanout)


@dataclass
class Tally:
    sent_at: dict[int, int] = field(default_factory=dict)
    update_ms: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    received: int = 0
    out_of_order: int = 0
    expected: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, seq: int, last_seq: int) -> None:
        self.received += 1
        if seq <= last_seq:
            self.out_of_order += 1
        sent = self.sent_at.get(seq)
        if sent is not None:
            self.latencies_ms.append((time.perf_counter_ns() - sent) / 1e6)
        if self.expected and self.received >= self.expected:
            self.done.set()


@dataclass(frozen=True)
class Result:
    case: Case
    updates: int
    updates_per_second: float
    deliveries_per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    update_p50_ms: float
    update_p99_ms: float
    missing: int
    out_of_order: int
    peak_rss_mb: float


async def prepare(
    stub: pb_grpc.WorkEngineServiceStub, orchestrator_id: str, count: int
) -> list[tuple[str, int]]:
    await stub.RegisterOrchestrator(
        pb.RegisterOrchestratorRequest(orchestrator_id=orchestrator_id, display_name="bench")
    )

    async def one(index: int) -> tuple[str, int]:
        task = await stub.CreateTask(
            pb.CreateTaskRequest(orchestrator_id=orchestrator_id, workspace_id="bench", title=f"task {index}")
        )
        started = await stub.ExecuteTask(
            pb.ExecuteTaskRequest(orchestrator_id=orchestrator_id, task_id=task.task.id)
        )
        return task.task.id, started.attempt

    prepared: list[tuple[str, int]] = []
    for first in range(0, count, 50):
        prepared += await asyncio.gather(*(one(i) for i in range(first, min(first + 50, count))))
    return prepared


async def subscribe(
    stub: pb_grpc.WorkEngineServiceStub, task_id: str, tally: Tally, ready: asyncio.Queue[None]
) -> None:
    call = stub.WatchTaskProgress(pb.WatchTaskProgressRequest(task_id=task_id))
    last_seq = -1
    try:
        async for response in call:
            event = response.event
            if not event.metadata.fields:  # the snapshot
                ready.put_nowait(None)
                continue
            seq = int(event.metadata.fields["seq"].number_value)
            tally.record(seq, last_seq)
            last_seq = seq
    except asyncio.CancelledError:
        call.cancel()
        raise


async def produce(
    stub: pb_grpc.WorkEngineServiceStub, tasks: list[tuple[str, int]], case: Case, tally: Tally
) -> int:
    total = int((case.seconds + WARMUP_SECONDS) * case.rate)
    warmup = int(WARMUP_SECONDS * case.rate)
    loop = asyncio.get_running_loop()
    start = loop.time()
    pending: list[asyncio.Task[None]] = []

    async def send(seq: int) -> None:
        task_id, attempt = tasks[seq % len(tasks)]
        metadata = struct_pb2.Struct()
        metadata.update({"seq": seq})
        if seq >= warmup:
            tally.sent_at[seq] = time.perf_counter_ns()
        await stub.UpdateTaskProgress(
            pb.UpdateTaskProgressRequest(
                task_id=task_id, attempt=attempt, progress=(seq // len(tasks)) % 101, metadata=metadata
            )
        )
        if seq >= warmup:
            tally.update_ms.append((time.perf_counter_ns() - tally.sent_at[seq]) / 1e6)

    for seq in range(total):
        delay = start + seq / case.rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.create_task(send(seq)))
    await asyncio.gather(*pending)
    return total


async def run_case(target: str, case: Case, peak_rss_mb: Callable[[], float]) -> Result:
    channels = [grpc.aio.insecure_channel(target) for _ in range(CHANNELS)]
    stubs = [pb_grpc.WorkEngineServiceStub(c) for c in channels]
    try:
        tasks = await prepare(stubs[0], f"bench-{uuid.uuid4().hex[:8]}", case.tasks)
        tally = Tally()
        ready: asyncio.Queue[None] = asyncio.Queue()
        readers = [
            asyncio.create_task(subscribe(stubs[i % CHANNELS], tasks[i % len(tasks)][0], tally, ready))
            for i in range(case.subscribers)
        ]
        for _ in range(case.subscribers):
            await asyncio.wait_for(ready.get(), 60)
        began = time.perf_counter()
        total = await produce(stubs[0], tasks, case, tally)
        produced_in = time.perf_counter() - began
        tally.expected = total * case.subscribers // len(tasks)
        if tally.received < tally.expected:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tally.done.wait(), DRAIN_SECONDS)
        delivered_in = time.perf_counter() - began
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        latencies = sorted(tally.latencies_ms)
        return Result(
            case=case,
            updates=total,
            updates_per_second=total / produced_in,
            deliveries_per_second=tally.received / delivered_in,
            p50_ms=statistics.median(latencies),
            p99_ms=percentile(latencies, 0.99),
            max_ms=latencies[-1],
            update_p50_ms=statistics.median(tally.update_ms),
            update_p99_ms=percentile(tally.update_ms, 0.99),
            missing=tally.expected - tally.received,
            out_of_order=tally.out_of_order,
            peak_rss_mb=peak_rss_mb(),
        )
    finally:
        for channel in channels:
            await channel.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * fraction) - 1)]


def table(results: list[Result]) -> str:
    lines = [
        "| subscribers | per task | updates/s | deliveries/s | delivery p50 ms | delivery p99 ms | max ms "
        "| update RPC p50 ms | update RPC p99 ms | missing | out of order | server peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.case.subscribers:,} | {r.case.fanout} | {r.updates_per_second:.0f} "
            f"| {r.deliveries_per_second:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.1f} "
            f"| {r.update_p50_ms:.1f} | {r.update_p99_ms:.1f} "
            f"| {r.missing} | {r.out_of_order} | {r.peak_rss_mb:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", help="a PostgreSQL server to create the bench database on (default: embedded)"
    )
    parser.add_argument("--subscribers", default="100,1000", help="comma-separated subscriber counts")
    parser.add_argument("--fanout", type=int, default=1, help="subscribers per task")
    parser.add_argument("--rate", type=float, default=200, help="progress updates per second")
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per case")
    parser.add_argument("--serve-arg", action="append", default=[], help="extra `workengine serve` argument")

    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the table shows medians")
    args = parser.parse_args()

    cases = [
        Case(subscribers=int(count), fanout=args.fanout, rate=args.rate, seconds=args.seconds)
        for count in args.subscribers.split(",")
    ]
    runs: dict[int, list[Result]] = {case.subscribers: [] for case in cases}
    with fresh_database(args.database_url) as database_url:
        # Cases interleaved run by run, so a noisy moment of the machine spreads over all of them.
        for _ in range(args.repeat):
            for case in cases:
                # Every subscriber connects from 127.0.0.1: lift the per-client stream limit.
                with served(database_url, "--max-streams-per-client=0", *args.serve_arg) as server:
                    result = asyncio.run(run_case(server.target, case, server.peak_rss_mb))
                runs[case.subscribers].append(result)
                print(table([result]).splitlines()[-1], flush=True)
    print(f"\nmedian of {args.repeat} runs per case:\n")
    print(table([median_result(results) for results in runs.values()]))


def median_result(results: list[Result]) -> Result:
    """Each figure's median over the runs (missing and out-of-order: the worst run)."""

    def mid(name: str) -> float:
        return float(statistics.median(getattr(r, name) for r in results))

    return Result(
        case=results[0].case,
        updates=int(mid("updates")),
        updates_per_second=mid("updates_per_second"),
        deliveries_per_second=mid("deliveries_per_second"),
        p50_ms=mid("p50_ms"),
        p99_ms=mid("p99_ms"),
        max_ms=mid("max_ms"),
        update_p50_ms=mid("update_p50_ms"),
        update_p99_ms=mid("update_p99_ms"),
        missing=max(r.missing for r in results),
        out_of_order=max(r.out_of_order for r in results),
        peak_rss_mb=mid("peak_rss_mb"),
    )


if __name__ == "__main__":
    main()
