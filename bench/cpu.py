"""CPU time of the PostgreSQL server's processes, for per-lifecycle CPU budgets.

Counts the postmaster and its living children (backends, WAL writer, checkpointer...): a
backend's time is lost when it exits, so measure over a window in which the connections of
interest stay open.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import psycopg

from workengine.store.database import libpq_url

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int | str) -> list[str]:
    # The fields after the command name, which may itself hold spaces or parentheses.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu_seconds(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def process_cpu_seconds(pid: int | str) -> float:
    """User plus system CPU time the process has used so far."""
    return _cpu_seconds(_stat(pid))


@cache
def _postmaster(database_url: str) -> int:
    with psycopg.connect(libpq_url(database_url)) as connection:
        row = connection.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        return int(_stat(row[0])[1])  # a backend's parent is the postmaster (read while it lives)


def database_cpu_seconds(database_url: str) -> float:
    """User plus system CPU time of the database server's living processes so far."""
    postmaster = _postmaster(database_url)
    total = process_cpu_seconds(postmaster)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat(entry.name)
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == postmaster:
            total += _cpu_seconds(fields)
    return total
