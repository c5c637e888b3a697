"""Where the server's time goes: py-spy samples `workengine serve` during a benchmark's load.

    pip install py-spy
    python -m bench.profile                        # 8 lifecycle daemons, 8 s
    python -m bench.profile --load transport --seconds 5 --svg /tmp/getTask.svg

Runs the load against one server process while `py-spy record` samples it (`--idle` off, so
only time on the CPU counts), then prints the functions with the largest inclusive and self
share of the samples. `--svg` also keeps the flame graph.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import lifecycle, seed, transport
from bench.server import fresh_database, served


def summarize(collapsed: Path, top: int) -> str:
    """Inclusive and self shares from py-spy's raw (collapsed stack) output."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")"
            if " (" in f
            else f
            for f in stack.split(";")
        ]
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    lines = [f"{total} samples\n", "inclusive %  function"]
    lines += [f"{100 * n / total:10.1f}  {frame}" for frame, n in inclusive.most_common(top)]
    lines += ["", "self %      function"]
    lines += [f"{100 * n / total:10.1f}  {frame}" for frame, n in own.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="a PostgreSQL server to create the bench database on")
    parser.add_argument("--load", choices=("lifecycle", "transport"), default="lifecycle")
    parser.add_argument("--clients", type=int, default=8, help="daemons or concurrent callers")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--top", type=int, default=30, help="functions to list")
    parser.add_argument("--svg", type=Path, help="also write py-spy's flame graph here")
    parser.add_argument("--raw", type=Path, help="also keep py-spy's collapsed stacks here")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    with fresh_database(args.database_url) as database_url:
        seed.prepare_schema(database_url)
        command = transport.COMMAND if args.load == "transport" else None
        with served(database_url, command=command) as server, tempfile.TemporaryDirectory() as scratch:
            raw = Path(scratch) / "profile.txt"
            duration = str(max(1, round(args.seconds)))
            pid = str(server.process.pid)
            sampler = subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--pid",
                    pid,
                    "--duration",
                    duration,
                    "--format",
                    "raw",
                    "--output",
                    str(raw),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            svg = None
            if args.svg is not None:
                svg = subprocess.Popen(
                    [py_spy, "record", "--pid", pid, "--duration", duration, "--output", str(args.svg)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            if args.load == "lifecycle":
                orchestrator_id = lifecycle.seed_orchestrator(database_url, args.seconds)
                asyncio.run(lifecycle.daemons(server.target, orchestrator_id, args.clients, args.seconds))
            else:
                task_id = transport.seed_task(database_url)
                asyncio.run(transport.measure(server.target, task_id, args.clients, args.seconds / 2))
            sampler.wait()
            if svg is not None:
                svg.wait()
            print(summarize(raw, args.top))
            if args.raw is not None:
                shutil.copyfile(raw, args.raw)


if __name__ == "__main__":
    main()
