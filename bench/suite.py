"""The benchmark suite: every figure beside its reference, medians of several runs, one table.

    python -m bench.suite                                  # embedded PostgreSQL, ~5 minutes
    python -m bench.suite --database-url postgresql://postgres@127.0.0.1:5432/postgres
    python -m bench.suite --only selection,stats --results bench/results/latest.md
    python -m bench.suite --selection-sizes 100:100,10000:1000,10000000:1000000  # bigger

One database (a fresh one on `--database-url`'s server, else on an embedded PostgreSQL),
each benchmark on its own orchestrators and its own server processes:

1. lifecycle   N daemons claim -> progress -> complete, beside pgbench running the same SQL
2. transport   GetTask against an empty method on the same server (bench/echo_server.py)
3. selection   SelectNextTask p50/p99 at 100 / 10,000 / 1,000,000 tasks, EXPLAIN at each
4. fanout      completing a task with 10,000 dependents; one of 10,000 dependencies
5. stats       GetExecutionStats over 1,000,000 finished tasks
6. memory      the server's peak RSS (VmHWM) during 1 and 3
7. history     ClaimNextTask with history on (5, 50) and off at 1,000 / 10,000 / 1,000,000
               finished tasks, EXPLAIN of execution_memory at each

Each benchmark runs `--repeat` times (its cases interleaved within a run) and the table shows
the median of each figure. `--results FILE` also writes the table and the EXPLAIN plans.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench import fanout, history, lifecycle, seed, selection, stats, transport
from bench.measure import Figure, median_figures, table
from bench.server import fresh_database

BENCHMARKS = ("transport", "lifecycle", "selection", "fanout", "stats", "history")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="a PostgreSQL server to create the bench database on")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each benchmark; medians are shown")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated benchmarks to run")
    parser.add_argument("--daemons", default="8,32", help="lifecycle: daemon (and pgbench client) counts")
    parser.add_argument("--lifecycle-seconds", type=float, default=6, help="lifecycle: seconds per side")
    parser.add_argument("--concurrency", default="8", help="transport: concurrent callers")
    parser.add_argument("--transport-seconds", type=float, default=4, help="transport: seconds per side")
    parser.add_argument("--selection-sizes", default=selection.DEFAULT_SIZES, help="selection: total:ready")
    parser.add_argument("--selection-calls", type=int, default=200, help="selection: calls per size")
    parser.add_argument("--fanout-sizes", default="1000,10000", help="fan-out: dependent counts")
    parser.add_argument("--stats-tasks", type=int, default=1_000_000, help="stats: finished tasks")
    parser.add_argument("--stats-calls", type=int, default=5, help="stats: calls per run")
    parser.add_argument("--history-sizes", default=history.DEFAULT_SIZES, help="history: finished tasks")
    parser.add_argument("--history-calls", type=int, default=200, help="history: calls per case and size")
    parser.add_argument("--results", type=Path, help="also write the table and the plans to this file")
    args = parser.parse_args()
    only = args.only.split(",")
    if unknown := set(only) - set(BENCHMARKS):
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")

    began = time.monotonic()
    figures: list[Figure] = []
    plans: dict[str, str] = {}
    lifecycle_rss: list[float] = []
    selection_rss: list[float] = []

    def report(name: str, runs: list[list[Figure]]) -> None:
        merged = median_figures(runs)
        figures.extend(merged)
        print(f"\n{name}: median of {len(runs)} runs ({time.monotonic() - began:.0f} s so far)")
        print(table(merged), flush=True)

    with fresh_database(args.database_url) as database_url:
        seed.prepare_schema(database_url)
        with psycopg.connect(database_url) as conn:
            server_version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]

        if "transport" in only:
            task_id = transport.seed_task(database_url)
            concurrencies = [int(c) for c in args.concurrency.split(",")]
            report(
                "transport",
                [
                    transport.run_once(database_url, task_id, concurrencies, args.transport_seconds)
                    for _ in range(args.repeat)
                ],
            )

        if "lifecycle" in only:
            clients = [int(c) for c in args.daemons.split(",")]
            report(
                "lifecycle",
                [
                    lifecycle.run_once(database_url, clients, args.lifecycle_seconds, lifecycle_rss)
                    for _ in range(args.repeat)
                ],
            )

        if "selection" in only:
            sizes = [
                selection.seed_size(database_url, size)
                for size in selection.parse_sizes(args.selection_sizes)
            ]
            found: dict[str, str] = {}
            runs = [
                selection.run_once(database_url, sizes, args.selection_calls, selection_rss, found)
                for _ in range(args.repeat)
            ]
            plans.update(found)
            report("selection", runs)

        if "fanout" in only:
            counts = [int(n) for n in args.fanout_sizes.split(",")]
            found = {}
            runs = [
                fanout.run_once(database_url, counts, found if not i else None) for i in range(args.repeat)
            ]
            plans.update(found)
            report("fanout", runs)

        if "stats" in only:
            orchestrator_id = stats.seed_finished(database_url, args.stats_tasks)
            found = {}
            runs = [
                stats.run_once(database_url, orchestrator_id, args.stats_tasks, args.stats_calls, found)
                for _ in range(args.repeat)
            ]
            plans.update(found)
            report("stats", runs)

        if "history" in only:
            supply = history.supply_needed(args.history_calls, args.repeat)
            history_sizes = [
                history.seed_size(database_url, size, supply)
                for size in history.parse_sizes(args.history_sizes)
            ]
            found = {}
            runs = [
                history.run_once(database_url, history_sizes, args.history_calls, found, i)
                for i in range(args.repeat)
            ]
            plans.update(found)
            report("history", runs)

    for during, rss in (("1 lifecycle", lifecycle_rss), ("3 selection", selection_rss)):
        if rss:
            figures.append(
                Figure("6 memory", f"server peak RSS during {during}", max(rss), "MB", target="<=250")
            )

    heading = (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs, "
        f"PostgreSQL {server_version} ({'embedded' if args.database_url is None else 'given server'}), "
        f"median of {args.repeat} runs, {time.monotonic() - began:.0f} s"
    )
    command = "python -m bench.suite " + " ".join(sys.argv[1:])
    print(f"\n{heading}\n`{command.strip()}`\n")
    print(table(figures))
    for name, plan in plans.items():
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) {name}:\n{plan}")
    if args.results is not None:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        explained = "".join(f"\n### {name}\n\n```\n{plan}\n```\n" for name, plan in plans.items())
        args.results.write_text(
            f"# Benchmark results\n\n{heading}\n\n```bash\n{command.strip()}\n```\n\n{table(figures)}\n\n"
            f"## EXPLAIN (ANALYZE, BUFFERS)\n{explained}"
        )


if __name__ == "__main__":
    main()
