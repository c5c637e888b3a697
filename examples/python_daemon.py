"""A WorkEngine daemon in Python, over the `workengine.client` library: the model to copy.

It registers its orchestrator (or finds it), then loops: claim the best ready task
(long-polling `--wait` seconds, naming itself with `identity`), print on stderr what the
context recalls of past executions (the history, and the estimate of run time and failure
share), report progress, do the work while a background thread heartbeats every third of the
lease, complete it with an output naming this daemon, and print one JSON line per task. The
stand-in work fails a task whose metadata says "fail": the daemon reports FAILED with that
error and the metadata's "lesson" as a lesson for the next attempt. A heartbeat, progress
report or completion refused (`ReportRefused`) means the attempt is no longer ours (cancelled,
lease lost, superseded): it stops that work at once, logs the refusal's `reason` and claims
again. With --exit-when-idle it stops after a claim that found nothing; otherwise it runs
until Ctrl-C or SIGTERM.

    python examples/python_daemon.py --target localhost:50051 --orchestrator fleet --name py-1

`--log PATH` appends one JSON line per claim, completion (or failure) and give-up to PATH
(written before the work starts and flushed to the kernel, so it survives a SIGKILL): what the
reliability harness (`python -m bench.reliability`) checks against the server's attempt
history.

When WORKENGINE_TOKEN is set, every call carries it as `authorization: Bearer <token>` (a
server with authentication on needs it: the orchestrator's token, or the admin's).

With `workengine[otel]` installed and OTEL_EXPORTER_OTLP_ENDPOINT set, it traces: each task's
work is a span in the trace of the call that created the task (`task_span`), and its progress
reports and completion carry that trace to the server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from types import FrameType
from typing import IO, Any, TypeVar

from google.protobuf import duration_pb2

from workengine.client import (
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    NotFound,
    ReportRefused,
    Unavailable,
    WorkEngineClient,
    WorkEngineError,
)
from workengine.client.tracing import task_span
from workengine.tracing import configure_tracing
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb

T = TypeVar("T")


def ensure_orchestrator(client: WorkEngineClient, orchestrator_id: str) -> None:
    try:
        client.get_orchestrator(orchestrator_id)
    except NotFound:
        with contextlib.suppress(AlreadyExists):  # another daemon registered it in between: fine
            client.register_orchestrator(orchestrator_id, orchestrator_id=orchestrator_id)


def refusal_reason(refused: ReportRefused) -> str:
    """Why the attempt is no longer ours: LEASE_EXPIRED, TASK_CANCELLED, ATTEMPT_SUPERSEDED,
    ... (a `Refusal`), or the server's message when it gave no reason."""
    return str(refused.reason or refused.details())


class Lost(Exception):
    """The attempt is no longer ours: stop working on it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WorkFailed(Exception):
    """The work itself failed: reported FAILED, with what it taught for the next attempt."""

    def __init__(self, error: str, lessons: list[str]) -> None:
        super().__init__(error)
        self.error, self.lessons = error, lessons


def do_the_work(task: task_pb2.Task, seconds: float, lost: threading.Event) -> dict[str, object] | None:
    """Stands in for the agent's real work: `seconds` of it, abandoned (None) as soon as `lost`
    is set. Real work checks the flag the same way, between steps. A task whose metadata has
    "fail" fails with that error (WorkFailed), leaving its "lesson", if any, to the next attempt."""
    if lost.wait(seconds):
        return None
    if "fail" in task.metadata:
        lessons = [str(task.metadata["lesson"])] if "lesson" in task.metadata else []
        raise WorkFailed(str(task.metadata["fail"]), lessons)
    return {"summary": f"did {task.title!r}"}


def _seconds(duration: duration_pb2.Duration) -> str:
    return f"{duration.ToTimedelta().total_seconds():.1f}s"


def describe_history(context: task_pb2.TaskContext) -> list[str]:
    """One line per past execution in the context: how this and similar work went before."""
    lines = []
    for past in context.history:
        source = task_pb2.PastExecutionSource.Name(past.source).removeprefix("PAST_EXECUTION_SOURCE_")
        outcome = task_pb2.AttemptOutcome.Name(past.outcome).removeprefix("ATTEMPT_OUTCOME_")
        took = _seconds(past.duration)
        line = f"{source} {past.task_id} {json.dumps(past.title)} #{past.attempt}: {outcome} in {took}"
        if past.error or past.output_excerpt:
            line += f", {past.error or past.output_excerpt}"
        if past.lessons:
            line += f"; lessons: {' / '.join(past.lessons)}"
        lines.append(line)
    return lines


def describe_estimate(estimate: task_pb2.ExecutionEstimate) -> str:
    """The expected run time and failure share, each with the group and samples it rests on."""

    def group(value: task_pb2.SimilarityGroup) -> str:
        return task_pb2.SimilarityGroup.Name(value).removeprefix("SIMILARITY_GROUP_")

    # Every completed attempt is a finished one too: without a failure share, nothing has enough.
    if not estimate.failure_group:
        widest = estimate.groups[-1]
        return (
            f"too few samples ({widest.completed} completed / {widest.finished} finished"
            f" in the widest group; {estimate.min_samples} needed)"
        )
    run_time = "run time: too few samples"
    if estimate.duration_group:
        run_time = (
            f"p50 {_seconds(estimate.p50_duration)}, p90 {_seconds(estimate.p90_duration)}"
            f" ({group(estimate.duration_group)}, {estimate.duration_samples} completed)"
        )
    failures = f"({group(estimate.failure_group)}, {estimate.failure_samples} finished)"
    return f"{run_time}; failure share {estimate.failure_share:.0%} {failures}"


def print_context(name: str, context: task_pb2.TaskContext, attempt: int) -> None:
    """What the server remembers of this work (stderr: stdout is one JSON line per task)."""
    print(f"{name}: claimed {context.task.id} #{attempt}; history:", file=sys.stderr)
    for line in describe_history(context) or ["(none)"]:
        print(f"{name}:   {line}", file=sys.stderr)
    if context.HasField("estimate"):  # unset only when the claim asked for no history
        print(f"{name}:   estimate: {describe_estimate(context.estimate)}", file=sys.stderr, flush=True)


# A server restarting or briefly unreachable: back off and try again, never exit.
TRANSIENT = (Unavailable, Cancelled, DeadlineExceeded)
MAX_BACKOFF_SECONDS = 5.0


class Stopped(Exception):
    pass


class Heartbeat:
    """Keeps one attempt's lease while it works: a thread calls Heartbeat every third of the
    lease. A refusal (ReportRefused) sets `lost` and records its reason; any other error is
    tried again at the next beat, which still leaves two beats before the lease ends."""

    def __init__(self, client: WorkEngineClient, task_id: str, attempt: int, lease_seconds: float) -> None:
        self.client, self.task_id, self.attempt = client, task_id, attempt
        self.period = max(lease_seconds / 3, 0.1)
        self.lost = threading.Event()
        self.reason = ""
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._done.wait(self.period):
            try:
                self.client.heartbeat(self.task_id, self.attempt, timeout=self.period)
            except ReportRefused as refused:
                self.reason = refusal_reason(refused)
                self.lost.set()
                return
            except WorkEngineError:
                pass  # transient: the next beat tries again


def work_on(
    client: WorkEngineClient, args: argparse.Namespace, claimed: Any, persist: Callable[..., Any]
) -> str:
    """Reports progress, does the work under a heartbeat, completes; returns how it ended
    ("completed" or "failed"). Lost when the attempt lost the task meanwhile."""
    task, attempt = claimed.context.task, claimed.attempt
    lease_seconds = (task.lease_expire_time.ToDatetime() - task.start_time.ToDatetime()).total_seconds()
    # A span in the creator's trace (a no-op unless this process traces); the calls inside carry it.
    with task_span(claimed.context):
        try:
            with Heartbeat(client, task.id, attempt, lease_seconds) as heartbeat:
                persist(client.update_task_progress, task.id, attempt, 50, f"{args.name} is halfway")
                result = do_the_work(task, args.work_seconds, heartbeat.lost)
        except WorkFailed as failed:
            # The lessons come back in the history of the next attempt at this and similar work.
            failure = {"error": failed.error, "lessons": failed.lessons}
            persist(client.complete_task, task.id, attempt, pb.COMPLETION_STATUS_FAILED, **failure)
            return "failed"
        if result is None:
            raise Lost(heartbeat.reason)
        output = {"by": "python", "daemon": args.name, **result}
        persist(client.complete_task, task.id, attempt, output=output)
        return "completed"


class Persist:
    """Calls until it gets an answer: the claim, or a report on work already done (progress and
    completion are safe to repeat). A refusal (ReportRefused) raises Lost with its reason; other
    errors go to the caller. Once asked to stop, it still makes the call (a task claimed or
    worked on is reported, not left to its lease) but no longer retries it (Stopped)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stopping = False

    def stop(self, _signum: int, _frame: FrameType | None) -> None:
        self.stopping = True

    def __call__(self, call: Callable[..., T], *call_args: Any, **call_kwargs: Any) -> T:
        backoff = 0.2
        while True:
            try:
                return call(*call_args, **call_kwargs)
            except ReportRefused as refused:
                raise Lost(refusal_reason(refused)) from refused
            except TRANSIENT as error:
                if self.stopping:
                    raise Stopped from error
                print(f"{self.name}: {error.code().name}; retrying", file=sys.stderr, flush=True)
                time.sleep(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)


def run(client: WorkEngineClient, args: argparse.Namespace, log: IO[str] | None) -> int:
    lease = timedelta(seconds=args.lease_duration) if args.lease_duration else None
    persist = Persist(args.name)

    def record(event: str, task_id: str, attempt: int, **extra: object) -> None:
        if log is not None:
            line = {"event": event, "daemon": args.name, "task": task_id, "attempt": attempt, **extra}
            log.write(json.dumps(line) + "\n")
            log.flush()  # in the kernel's hands: a SIGKILL right after cannot lose it

    signal.signal(signal.SIGTERM, persist.stop)
    signal.signal(signal.SIGINT, persist.stop)
    # Only now: a supervisor may signal as soon as it reads this line.
    print(f"{args.name}: ready", file=sys.stderr, flush=True)
    processed = 0
    try:
        while not persist.stopping:
            claimed = persist(
                lambda: client.claim_next_task(
                    args.orchestrator,
                    wait=timedelta(seconds=args.wait),
                    lease_duration=lease,
                    identity=args.name,
                )
            )
            if not claimed.HasField("context"):
                if args.exit_when_idle:
                    break
                continue
            task, attempt = claimed.context.task, claimed.attempt
            record("claimed", task.id, attempt)
            print_context(args.name, claimed.context, attempt)
            try:
                outcome = work_on(client, args, claimed, persist)
            except Lost as lost:
                # Cancelled, lease lost or handed to a newer attempt while we worked: drop it.
                print(f"{args.name}: gave up {task.id}: {lost.reason}", file=sys.stderr, flush=True)
                record("gave_up", task.id, attempt, reason=lost.reason)
                continue
            record(outcome, task.id, attempt)
            processed += 1
            print(json.dumps({"task": task.id, "attempt": attempt, "outcome": outcome}), flush=True)
    except Stopped:
        pass
    return processed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="localhost:50051")
    parser.add_argument("--orchestrator", default="fleet")
    parser.add_argument("--name", default="python-daemon", help="also the identity claims carry")
    parser.add_argument("--wait", type=float, default=1.0, help="long-poll seconds per claim")
    parser.add_argument("--work-seconds", type=float, default=0.0, help="simulated work per task")
    parser.add_argument(
        "--lease-duration", type=float, help="seconds of lease per claim (default: the task's or server's)"
    )
    parser.add_argument("--log", help="append a JSON line per claim, outcome and give-up to this file")
    parser.add_argument("--exit-when-idle", action="store_true")
    args = parser.parse_args(argv)
    tracing = configure_tracing("workengine-daemon")  # None unless OTEL_* variables ask for traces
    try:
        return serve_tasks(args)
    finally:
        if tracing is not None:
            tracing.shutdown()  # exports the spans still buffered


def serve_tasks(args: argparse.Namespace) -> int:
    with WorkEngineClient(args.target, token=os.environ.get("WORKENGINE_TOKEN") or None) as client:
        log = open(args.log, "a", encoding="utf-8") if args.log else None  # noqa: SIM115
        try:
            ensure_orchestrator(client, args.orchestrator)  # a server that is down now is an error
            processed = run(client, args, log)
        except WorkEngineError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        finally:
            if log is not None:
                log.close()
    print(f"{args.name}: processed {processed} tasks", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
