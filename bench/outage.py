"""Outages of an embedded PostgreSQL of its own, for the fault runs (bench.faults) and their tests.

The database can crash or stop cleanly (`halt`), start again on the same socket (`resume`), or
hang without closing anything (`freeze`, `thaw`). Nothing here is needed to serve, so it lives
with the benchmarks, which the tests import too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from pathlib import Path

from workengine.store.embedded import EmbeddedPostgres


class RestartableDatabase:
    """An embedded PostgreSQL of the run's own, in a temporary directory, deleted by `close()`."""

    def __init__(self) -> None:
        self.server = EmbeddedPostgres(
            Path(tempfile.mkdtemp(prefix="workengine-faults-")) / "pgdata", delete_on_exit=True
        )
        self.url = self.server.ensure_database()

    def close(self) -> None:
        self.server.stop()

    def halt(self, mode: str = "immediate") -> None:
        """Stops the server process but keeps its data, as an outage would: "immediate" is a
        crash (recovery replays the WAL on the next start), "fast" a clean shutdown that
        disconnects every client. `resume()` starts it again."""
        self.server.pg_ctl("-w", "-m", mode, "stop")

    def resume(self) -> None:
        """Starts the server again after `halt()`, on the same socket: `url` is unchanged."""
        handle = self.server.handle
        info = handle.get_postmaster_info()  # from before the halt: the socket directory
        self.server.pg_ctl("-w", "-o", '-h ""', "-o", f"-k {info.socket_dir}", "-l", str(handle.log), "start")
        handle.ensure_postgres_running()  # finds it running and records its new pid

    def freeze(self) -> None:
        """Stops (SIGSTOP) the server and its backends without closing anything: a database
        that neither answers nor refuses, like a hung host or a network dropping packets.
        `thaw()` lets it go on."""
        for pid in self.processes():
            _signal(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in reversed(self.processes()):
            _signal(pid, signal.SIGCONT)

    def processes(self) -> list[int]:
        """The postmaster and its children (Linux /proc)."""
        found = [int(self.server.handle.get_pid())]
        for pid in found:  # grows while it is walked: breadth first
            children = Path(f"/proc/{pid}/task/{pid}/children")
            with contextlib.suppress(FileNotFoundError):  # it exited while the tree was walked
                found.extend(int(child) for child in children.read_text().split())
        return found


def _signal(pid: int, signum: signal.Signals) -> None:
    # Backends come and go (a client disconnecting ends its backend): one that exited after
    # the tree was listed needs no signal.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
