"""What every benchmark module's `main` shares: the common flags, and repeated runs with medians."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from bench import seed
from bench.measure import Figure, median_figures, table
from bench.server import fresh_database

Prepared = TypeVar("Prepared")


def arguments(doc: str | None) -> argparse.ArgumentParser:
    """A parser with the flags every benchmark takes: `--database-url` and `--repeat`."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a PostgreSQL server to create the bench database on")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the table shows medians")
    return parser


def run_repeatedly(
    args: argparse.Namespace,
    prepare: Callable[[str], Prepared],
    run: Callable[[str, Prepared, int], list[Figure]],
    plans: dict[str, str] | None = None,
    summary: Callable[[], str] = str,
) -> None:
    """On a fresh, migrated database: `prepare` once (seeding), then `run` `--repeat` times
    (given the run's index), each run's table as it ends, the plans, and the medians."""
    runs: list[list[Figure]] = []
    with fresh_database(args.database_url) as database_url:
        seed.prepare_schema(database_url)
        prepared = prepare(database_url)
        for index in range(args.repeat):
            runs.append(run(database_url, prepared, index))
            print(table(runs[-1]), flush=True)
    for name, plan in (plans or {}).items():
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) {name}:\n{plan}")
    print(f"\nmedian of {args.repeat} runs{summary()}:\n")
    print(table(median_figures(runs)))
