"""A WorkEngine daemon in Python, over the `workengine.client` library.

It registers its orchestrator (or finds it), then loops: claim the best ready task
(long-polling `--wait` seconds), report progress, complete it with an output naming this
daemon, and print one JSON line per task. With --exit-when-idle it stops after a claim that
found nothing; otherwise it runs until Ctrl-C or SIGTERM.

    python examples/python_daemon.py --target localhost:50051 --orchestrator fleet --name py-1

When WORKENGINE_TOKEN is set, every call carries it as `authorization: Bearer <token>` (a
server with authentication on needs it: the orchestrator's token, or the admin's).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from types import FrameType
from typing import Any, TypeVar

import grpc

from workengine.client import WorkEngineClient
from workengine.v1 import task_pb2

T = TypeVar("T")


def ensure_orchestrator(client: WorkEngineClient, orchestrator_id: str) -> None:
    try:
        client.get_orchestrator(orchestrator_id)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND:
            raise
        try:
            client.register_orchestrator(orchestrator_id, orchestrator_id=orchestrator_id)
        except grpc.RpcError as raced:  # another daemon registered it in between: fine
            if raced.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise


def do_the_work(task: task_pb2.Task) -> dict[str, object]:
    """Stands in for the agent's real work."""
    return {"summary": f"did {task.title!r}"}


# A server restarting or briefly unreachable: back off and try again, never exit.
TRANSIENT = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED}
)
MAX_BACKOFF_SECONDS = 5.0


class Stopped(Exception):
    pass


def run(client: WorkEngineClient, args: argparse.Namespace) -> int:
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    def persist(call: Callable[..., T], *call_args: Any, **call_kwargs: Any) -> T:
        """Calls until it gets an answer: the claim, or a report on work already done
        (progress and completion are safe to repeat). Other errors go to the caller."""
        backoff = 0.2
        while not stopping:
            try:
                return call(*call_args, **call_kwargs)
            except grpc.RpcError as error:
                if error.code() not in TRANSIENT:
                    raise
                print(f"{args.name}: {error.code().name}; retrying", file=sys.stderr, flush=True)
                time.sleep(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        raise Stopped

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    processed = 0
    try:
        while not stopping:
            claimed = persist(
                lambda: client.claim_next_task(args.orchestrator, wait=timedelta(seconds=args.wait))
            )
            if not claimed.HasField("context"):
                if args.exit_when_idle:
                    break
                continue
            task, attempt = claimed.context.task, claimed.attempt
            try:
                persist(client.update_task_progress, task.id, attempt, 50, f"{args.name} is halfway")
                time.sleep(args.work_seconds)
                output = {"by": "python", "daemon": args.name, **do_the_work(task)}
                persist(client.complete_task, task.id, attempt, output=output)
            except grpc.RpcError as error:
                # Cancelled, or handed to a newer attempt, while we worked: drop it and go on.
                if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                print(f"{args.name}: gave up {task.id}: {error.details()}", file=sys.stderr, flush=True)
                continue
            processed += 1
            print(json.dumps({"task": task.id, "attempt": attempt}), flush=True)
    except Stopped:
        pass
    return processed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="localhost:50051")
    parser.add_argument("--orchestrator", default="fleet")
    parser.add_argument("--name", default="python-daemon")
    parser.add_argument("--wait", type=float, default=1.0, help="long-poll seconds per claim")
    parser.add_argument("--work-seconds", type=float, default=0.0, help="simulated work per task")
    parser.add_argument("--exit-when-idle", action="store_true")
    args = parser.parse_args(argv)
    with WorkEngineClient(args.target, token=os.environ.get("WORKENGINE_TOKEN") or None) as client:
        try:
            ensure_orchestrator(client, args.orchestrator)  # a server that is down now is an error
            print(f"{args.name}: ready", file=sys.stderr, flush=True)
            processed = run(client, args)
        except grpc.RpcError as error:
            print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    print(f"{args.name}: processed {processed} tasks", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
