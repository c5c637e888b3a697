"""Server instructions per task lifecycle and per GetTask, counted by callgrind: a CPU figure
that the machine's noise does not move.

    python -m bench.instructions                       # the engine and the stack's floor
    python -m bench.instructions --compare ../before   # and the engine of another checkout
    python -m bench.instructions --loads lifecycle --lifecycles 400

Throughput and CPU seconds on these shared 2-core machines swing by 20 % from one run to the
next, which hides a change of a few percent. The instructions a server executes for the same
calls do not: the same code gives the same count to 0.1 %. Each side is a server process run
under `valgrind --tool=callgrind` with instrumentation off; after a warm-up (connections
opened, statements prepared), instrumentation is switched on for exactly `--lifecycles`
lifecycles (claim -> progress 50 -> complete, by 8 daemons over 4 channels; the claims ask for
the default history, or for none with the `lifecycle-without-history` load) or three times as
many GetTask calls, then off again. Every thread of the process counts (gRPC's too); the
database's and the client's instructions do not. Sides:

- engine: `workengine serve` of this checkout;
- floor: bench/floor_server.py (the same statements on grpc.aio and psycopg, nothing else);
- unmetered: `workengine serve` with WORKENGINE_METRICS=0 (what the metrics cost);
- compared: `workengine serve` with `--compare`'s `src/` first on PYTHONPATH (run on this
  checkout's schema, which it must be able to use: it does not migrate).

Instructions are not time: a system call or a cache miss costs far more than an instruction,
so this is the figure for Python-level work, beside the lifecycle benchmark for the rest.
Needs valgrind (Debian: `apt-get install valgrind`); about a minute per side and load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2

from bench import lifecycle, seed
from bench.pgbench import RESULT
from bench.server import WORKENGINE, Served, fresh_database
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

DAEMONS = 8
WARMUP_LIFECYCLES = 5  # per daemon
GET_TASKS_PER_LIFECYCLE = 3  # the transport load: three GetTask calls for each lifecycle asked for
RPC_TIMEOUT = 120  # seconds: everything is ~50x slower under callgrind


@dataclass(frozen=True)
class Side:
    name: str
    command: list[str]
    env: dict[str, str]


def sides(compare: Path | None) -> list[Side]:
    under_callgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", sys.executable]
    found = [
        Side("engine", [*under_callgrind, WORKENGINE, "serve", "--no-migrate"], dict(os.environ)),
        Side("floor", [*under_callgrind, "-m", "bench.floor_server"], dict(os.environ)),
        Side(
            "unmetered",
            [*under_callgrind, WORKENGINE, "serve", "--no-migrate"],
            dict(os.environ, WORKENGINE_METRICS="0"),
        ),
    ]
    if compare is not None:
        source = compare.resolve() / "src"
        if not (source / "workengine").is_dir():
            raise SystemExit(f"--compare: no src/workengine under {compare}")
        found.append(
            Side(
                f"compared ({compare})",
                [*under_callgrind, WORKENGINE, "serve", "--no-migrate"],
                dict(os.environ, PYTHONPATH=str(source)),
            )
        )
    return found


async def lifecycles(target: str, orchestrator_id: str, per_daemon: int, history: bool = True) -> None:
    """`history`: claims ask for the context's default history and estimate, else for none
    (history_limit 0, docs/history.md)."""
    channels = [grpc.aio.insecure_channel(target) for _ in range(lifecycle.CHANNELS)]
    stubs = [pb_grpc.WorkEngineServiceStub(c) for c in channels]
    output = struct_pb2.Struct()
    output.update(RESULT.output)
    result = task_pb2.TaskResult(output=output)

    async def daemon(stub: pb_grpc.WorkEngineServiceStub) -> None:
        for _ in range(per_daemon):
            claimed = await stub.ClaimNextTask(
                pb.ClaimNextTaskRequest(
                    orchestrator_id=orchestrator_id, history_limit=None if history else 0
                ),
                timeout=RPC_TIMEOUT,
            )
            if not claimed.HasField("context"):
                raise RuntimeError("the queue ran dry")
            task_id, attempt = claimed.context.task.id, claimed.attempt
            await stub.UpdateTaskProgress(
                pb.UpdateTaskProgressRequest(task_id=task_id, attempt=attempt, progress=50),
                timeout=RPC_TIMEOUT,
            )
            await stub.CompleteTask(
                pb.CompleteTaskRequest(
                    task_id=task_id, attempt=attempt, status=pb.COMPLETION_STATUS_COMPLETED, result=result
                ),
                timeout=RPC_TIMEOUT,
            )

    try:
        await asyncio.gather(*(daemon(stubs[i % len(stubs)]) for i in range(DAEMONS)))
    finally:
        for channel in channels:
            await channel.close()


async def get_tasks(target: str, task_id: str, per_caller: int) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.WorkEngineServiceStub(channel)
        request = pb.GetTaskRequest(task_id=task_id)

        async def caller() -> None:
            for _ in range(per_caller):
                await stub.GetTask(request, timeout=RPC_TIMEOUT)

        await asyncio.gather(*(caller() for _ in range(DAEMONS)))


def callgrind_control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def instructions(database_url: str, side: Side, load: str, count: int) -> float:
    """The server's instructions per lifecycle (per GetTask call for the transport load)."""
    per_daemon = max(1, count // DAEMONS)
    # Enough for the warm-up and the counted lifecycles, and enough left in each of the seed's
    # 100 workspaces that every claim reads its full 20 related tasks (fewer would count less).
    tasks = max(4_500, 2 * DAEMONS * (WARMUP_LIFECYCLES + per_daemon) + 100 * 22)
    orchestrator_id = lifecycle.seed_orchestrator(database_url, 0, tasks)
    with seed.connect(database_url) as conn:
        found = conn.execute(
            "SELECT id FROM tasks WHERE orchestrator_id = %s ORDER BY id LIMIT 1", [orchestrator_id]
        ).fetchone()
    assert found is not None
    task_id = str(found[0])
    per_call = DAEMONS * (GET_TASKS_PER_LIFECYCLE if load == "transport" else 1)
    with tempfile.TemporaryDirectory(prefix="workengine-callgrind-") as directory:
        out = Path(directory) / "callgrind.out"
        command = [side.command[0], side.command[1], f"--callgrind-out-file={out}", *side.command[2:]]
        server = Served(database_url, command=command, env=side.env)

        def work(rounds: int) -> Coroutine[Any, Any, None]:
            if load == "transport":
                return get_tasks(server.target, task_id, GET_TASKS_PER_LIFECYCLE * rounds)
            return lifecycles(server.target, orchestrator_id, rounds, history=load == "lifecycle")

        try:
            asyncio.run(work(WARMUP_LIFECYCLES))
            callgrind_control(server.process.pid, "--instr=on")
            asyncio.run(work(per_daemon))
            callgrind_control(server.process.pid, "--instr=off")
        finally:
            server.stop()
        total = 0
        for dump in Path(directory).glob("callgrind.out*"):
            for line in dump.read_text(errors="replace").splitlines():
                if line.startswith(("summary:", "totals:")):
                    total = max(total, int(line.split()[1]))
    if not total:
        raise RuntimeError(f"{side.name}: callgrind wrote no totals")
    return total / (per_daemon * per_call)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="a PostgreSQL server to create the bench database on")
    parser.add_argument("--compare", type=Path, help="another checkout whose engine to count beside")
    parser.add_argument(
        "--loads",
        default="lifecycle,transport",
        help="lifecycle, lifecycle-without-history (claims with history_limit 0), transport",
    )
    parser.add_argument(
        "--sides", default="engine,floor", help="engine, floor, unmetered (compared: with --compare)"
    )
    parser.add_argument(
        "--lifecycles", type=int, default=200, help="lifecycles counted (transport: x3 calls)"
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("needs valgrind (callgrind and callgrind_control): apt-get install valgrind")
    loads = args.loads.split(",")
    if unknown := set(loads) - {"lifecycle", "lifecycle-without-history", "transport"}:
        raise SystemExit(f"--loads: unknown {', '.join(sorted(unknown))}")
    rows: list[tuple[str, dict[str, float]]] = []
    with fresh_database(args.database_url) as database_url:
        seed.prepare_schema(database_url)
        chosen = {*args.sides.split(","), "compared"}
        wanted = [side for side in sides(args.compare) if side.name.split(" ")[0] in chosen]
        for side in wanted:
            counts = {load: instructions(database_url, side, load, args.lifecycles) for load in loads}
            print(side.name, {load: f"{n / 1e6:.3f} M" for load, n in counts.items()}, flush=True)
            rows.append((side.name, counts))
    floor = dict(rows).get("floor", {load: 0.0 for load in loads})
    units = {
        "lifecycle": "per lifecycle",
        "lifecycle-without-history": "per lifecycle",
        "transport": "per GetTask",
    }
    header = " | ".join(f"{load}: M instructions {units[load]} (x floor)" for load in loads)
    print(f"\n| side | {header} |\n|---|{'---:|' * len(loads)}")
    for name, counts in rows:
        cells = " | ".join(
            f"{counts[load] / 1e6:.2f}" + (f" ({counts[load] / floor[load]:.2f})" if floor[load] else "")
            for load in loads
        )
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
