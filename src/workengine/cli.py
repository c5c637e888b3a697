"""The `workengine` command: serve, migrate, watch, and task/orchestrator commands for humans."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import grpc
from google.protobuf import json_format, timestamp_pb2

from workengine.config import (
    DEFAULT_EVENT_RETENTION,
    DEFAULT_LEASE_DURATION,
    DEFAULT_MAINTENANCE_INTERVAL,
    DEFAULT_MAX_STREAMS_PER_CLIENT,
    DEFAULT_POLL_INTERVAL,
    ConfigError,
    ServeSettings,
    default_target,
    default_token,
    parse_duration,
    parse_size,
    read_pem,
)
from workengine.domain.errors import WorkEngineError
from workengine.v1 import orchestrator_pb2, task_pb2
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc
from workengine.watch_view import ProgressBoard, kind_name, plain_line

# How long `watch` keeps reconnecting to an unavailable server before it gives up.
WATCH_RECONNECT_SECONDS = 30.0
WATCH_BOOKMARK_SECONDS = 60


def _print(message: Any) -> None:
    print(json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2))


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Adds `authorization: Bearer <token>` to every call."""

    def __init__(self, token: str) -> None:
        self._metadata = ("authorization", f"Bearer {token}")

    def _details(self, details: Any) -> Any:
        metadata = [*(details.metadata or ()), self._metadata]
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)


def _channel(args: argparse.Namespace) -> grpc.Channel:
    if args.tls or args.tls_ca or args.tls_client_cert:
        if bool(args.tls_client_cert) != bool(args.tls_client_key):
            raise ConfigError("--tls-client-cert and --tls-client-key go together")
        credentials = grpc.ssl_channel_credentials(
            root_certificates=read_pem(args.tls_ca, "--tls-ca"),
            private_key=read_pem(args.tls_client_key, "--tls-client-key"),
            certificate_chain=read_pem(args.tls_client_cert, "--tls-client-cert"),
        )
        channel = grpc.secure_channel(args.target, credentials)
    else:
        channel = grpc.insecure_channel(args.target)
    if args.token:
        channel = grpc.intercept_channel(channel, _Bearer(args.token))
    return channel


def _stub(args: argparse.Namespace) -> pb_grpc.WorkEngineServiceStub:
    return pb_grpc.WorkEngineServiceStub(_channel(args))


def _priority(name: str) -> int:
    return int(task_pb2.TaskPriority.Value(f"TASK_PRIORITY_{name.upper()}"))


def _timestamp(text: str) -> timestamp_pb2.Timestamp:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time zone, e.g. 2026-12-01T17:00:00+00:00")
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _duration(text: str) -> timedelta:
    try:
        value = parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if value <= timedelta(0):
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_seconds(text: str) -> float:
    return _duration(text).total_seconds()


def cmd_serve(args: argparse.Namespace) -> None:
    from workengine.serve import serve

    serve(
        ServeSettings.from_sources(
            host=args.host,
            port=args.port,
            database_url=args.database_url,
            data_dir=args.data_dir,
            migrate=False if args.no_migrate else None,
            listen=False if args.no_listen else None,
            poll_interval=args.poll_interval,
            event_retention=args.event_retention,
            lease_duration=args.lease_duration,
            maintenance_interval=args.maintenance_interval,
            admin_token=args.admin_token,
            admin_token_file=args.admin_token_file,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_client_ca=args.tls_client_ca,
            insecure=True if args.insecure else None,
            max_message_bytes=args.max_message_size,
            max_streams_per_client=args.max_streams_per_client,
        )
    )


def cmd_migrate(args: argparse.Namespace) -> None:
    from workengine.serve import resolve_database_url
    from workengine.store.migrate import migrate

    settings = ServeSettings.from_sources(database_url=args.database_url, data_dir=args.data_dir)
    migrate(resolve_database_url(settings))
    print("database schema is up to date")


def cmd_task_create(args: argparse.Namespace) -> None:
    request = pb.CreateTaskRequest(
        task_id=args.id or "",
        orchestrator_id=args.orchestrator,
        workspace_id=args.workspace,
        channel_id=args.channel or "",
        title=args.title,
        description=args.description or "",
        priority=_priority(args.priority),  # type: ignore[arg-type]
        tags=args.tag or [],
        depends_on=args.depends_on or [],
    )
    if args.due:
        request.due_time.CopyFrom(args.due)
    _print(_stub(args).CreateTask(request).task)


def cmd_task_get(args: argparse.Namespace) -> None:
    _print(_stub(args).GetTask(pb.GetTaskRequest(task_id=args.task_id)).task)


def cmd_task_attempts(args: argparse.Namespace) -> None:
    found = _stub(args).GetTask(pb.GetTaskRequest(task_id=args.task_id))
    _print(pb.GetTaskResponse(attempts=found.attempts))


def cmd_task_retry(args: argparse.Namespace) -> None:
    request = pb.RetryTaskRequest(task_id=args.task_id, max_attempts=args.max_attempts)
    _print(_stub(args).RetryTask(request).task)


def cmd_task_list(args: argparse.Namespace) -> None:
    request = pb.ListTasksRequest(
        orchestrator_id=args.orchestrator or "",
        workspace_id=args.workspace or "",
        statuses=[task_pb2.TaskStatus.Value(f"TASK_STATUS_{s.upper()}") for s in args.status or []],  # type: ignore[misc]
        page_size=args.page_size,
        page_token=args.page_token or "",
    )
    _print(_stub(args).ListTasks(request))


def cmd_orchestrator_register(args: argparse.Namespace) -> None:
    request = pb.RegisterOrchestratorRequest(
        orchestrator_id=args.id or "",
        display_name=args.name,
        role=args.role or "",
        discipline=args.discipline or "",
        capabilities=args.capability or [],
        timezone=args.timezone or "",
        charter=orchestrator_pb2.Charter(mission=args.mission or ""),
    )
    response = _stub(args).RegisterOrchestrator(request)
    _print(response.orchestrator)
    # Shown once (the server keeps only a hash); on stderr so stdout stays the orchestrator.
    print(
        f"token (shown once; `workengine orchestrator rotate-token` issues another): {response.token}",
        file=sys.stderr,
    )


def cmd_orchestrator_rotate_token(args: argparse.Namespace) -> None:
    request = pb.RotateOrchestratorTokenRequest(orchestrator_id=args.id)
    if args.ttl:
        request.token_ttl.FromTimedelta(args.ttl)
    if args.grace:
        request.previous_token_grace.FromTimedelta(args.grace)
    _print(_stub(args).RotateOrchestratorToken(request))


def cmd_orchestrator_revoke_tokens(args: argparse.Namespace) -> None:
    _print(_stub(args).RevokeOrchestratorTokens(pb.RevokeOrchestratorTokensRequest(orchestrator_id=args.id)))


def cmd_orchestrator_list(args: argparse.Namespace) -> None:
    _print(_stub(args).ListOrchestrators(pb.ListOrchestratorsRequest(page_size=args.page_size)))


def cmd_watch(args: argparse.Namespace) -> None:
    request = pb.WatchTaskProgressRequest(after_cursor=args.after_cursor, keep_open=args.keep_open)
    # Keeps the resume cursor fresh on a quiet watch, so a reconnect never finds it pruned.
    request.bookmark_interval.FromSeconds(WATCH_BOOKMARK_SECONDS)
    if args.task:
        request.task_id = args.task
    elif args.orchestrator:
        request.orchestrator_id = args.orchestrator
    else:
        request.workspace_id = args.workspace
    for kind in args.kind or []:
        request.kinds.append(task_pb2.TaskEventKind.Value(f"TASK_EVENT_KIND_{kind.upper()}"))  # type: ignore[arg-type]
    interactive = sys.stdout.isatty() if args.bars is None else args.bars
    board = ProgressBoard()

    def show(event: task_pb2.TaskEvent) -> None:
        if interactive:
            board.apply(event)
            sys.stdout.write(board.redraw())
        else:
            sys.stdout.write(plain_line(event) + "\n")
        sys.stdout.flush()

    stub = _stub(args)
    failing_since: float | None = None
    while True:
        stream = stub.WatchTaskProgress(request)
        try:
            for response in stream:
                failing_since = None
                request.after_cursor = response.event.cursor
                if response.event.kind != task_pb2.TASK_EVENT_KIND_BOOKMARK:
                    show(response.event)
            return
        except grpc.RpcError as error:
            # A server restarting (or shutting down) ends streams with UNAVAILABLE: resume from
            # the last cursor, so nothing is missed or shown twice, for a while before giving up.
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            now = time.monotonic()
            failing_since = failing_since or now
            if now - failing_since > WATCH_RECONNECT_SECONDS:
                raise
            print(f"reconnecting after cursor {request.after_cursor}", file=sys.stderr, flush=True)
            time.sleep(1.0)
        except KeyboardInterrupt:
            stream.cancel()
            return


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workengine", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gRPC server")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1, env WORKENGINE_HOST)")
    serve.add_argument("--port", type=int, help="port (default 50051, env WORKENGINE_PORT)")
    serve.add_argument(
        "--database-url", help="PostgreSQL URL (env WORKENGINE_DATABASE_URL); default: embedded"
    )
    serve.add_argument("--data-dir", help="embedded PostgreSQL data directory (env WORKENGINE_DATA_DIR)")
    serve.add_argument("--no-migrate", action="store_true", help="do not apply migrations on start")
    serve.add_argument(
        "--no-listen",
        action="store_true",
        help="poll the event table instead of LISTEN/NOTIFY, e.g. behind PgBouncer transaction pooling "
        "(env WORKENGINE_LISTEN=0)",
    )
    serve.add_argument(
        "--poll-interval",
        type=_positive_seconds,
        help=f"seconds between event-table polls with --no-listen (default {DEFAULT_POLL_INTERVAL})",
    )
    serve.add_argument(
        "--event-retention",
        type=_duration,
        help=f"how long events stay resumable, e.g. 12h or 7d (default {DEFAULT_EVENT_RETENTION}, "
        "env WORKENGINE_EVENT_RETENTION)",
    )
    serve.add_argument(
        "--lease-duration",
        type=_duration,
        help=f"lease a started task holds unless the task or the start asks for another "
        f"(default {DEFAULT_LEASE_DURATION}, env WORKENGINE_LEASE_DURATION)",
    )
    serve.add_argument(
        "--maintenance-interval",
        type=_positive_seconds,
        help=f"seconds between looks for expired leases and due retries (default "
        f"{DEFAULT_MAINTENANCE_INTERVAL}, env WORKENGINE_MAINTENANCE_INTERVAL)",
    )
    serve.add_argument(
        "--admin-token",
        help="the admin token; turns authentication on (env WORKENGINE_ADMIN_TOKEN; prefer the env "
        "or --admin-token-file: a command line shows in `ps`)",
    )
    serve.add_argument(
        "--admin-token-file",
        help="file holding the admin token (env WORKENGINE_ADMIN_TOKEN_FILE)",
    )
    serve.add_argument("--tls-cert", help="server certificate chain, PEM (env WORKENGINE_TLS_CERT)")
    serve.add_argument("--tls-key", help="server private key, PEM (env WORKENGINE_TLS_KEY)")
    serve.add_argument(
        "--tls-client-ca",
        help="require client certificates signed by this CA, PEM (env WORKENGINE_TLS_CLIENT_CA)",
    )
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback --host without authentication (env WORKENGINE_INSECURE=1)",
    )
    serve.add_argument(
        "--max-message-size",
        type=_size,
        help="largest request accepted, e.g. 4MiB (default 8MiB, env WORKENGINE_MAX_MESSAGE_SIZE)",
    )
    serve.add_argument(
        "--max-streams-per-client",
        type=int,
        help=f"concurrent WatchTaskProgress streams per token (or per client address without "
        f"authentication); 0: unlimited (default {DEFAULT_MAX_STREAMS_PER_CLIENT}, "
        "env WORKENGINE_MAX_STREAMS_PER_CLIENT)",
    )
    serve.set_defaults(handler=cmd_serve)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--database-url")
    migrate.add_argument("--data-dir")
    migrate.set_defaults(handler=cmd_migrate)

    def client(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
        command: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
        command.add_argument(
            "--target", default=default_target(), help="server address (env WORKENGINE_TARGET)"
        )
        command.add_argument(
            "--token", default=default_token(), help="bearer token to send (env WORKENGINE_TOKEN)"
        )
        command.add_argument("--tls", action="store_true", help="connect with TLS (system CAs)")
        command.add_argument("--tls-ca", help="connect with TLS, trusting this CA (PEM)")
        command.add_argument("--tls-client-cert", help="client certificate for mTLS (PEM)")
        command.add_argument("--tls-client-key", help="client private key for mTLS (PEM)")
        return command

    task = commands.add_parser("task", help="create, get and list tasks").add_subparsers(
        dest="action", required=True
    )
    create = client(task, "create", "create a task")
    create.add_argument("--orchestrator", required=True)
    create.add_argument("--workspace", required=True)
    create.add_argument("--title", required=True)
    create.add_argument("--id")
    create.add_argument("--channel")
    create.add_argument("--description")
    create.add_argument("--priority", default="medium", choices=["low", "medium", "high", "critical"])
    create.add_argument("--due", type=_timestamp, help="ISO 8601 time with zone")
    create.add_argument("--tag", action="append")
    create.add_argument("--depends-on", action="append")
    create.set_defaults(handler=cmd_task_create)
    get = client(task, "get", "show a task")
    get.add_argument("task_id")
    get.set_defaults(handler=cmd_task_get)
    attempts = client(task, "attempts", "show every attempt of a task: who ran it, when, how it ended")
    attempts.add_argument("task_id")
    attempts.set_defaults(handler=cmd_task_attempts)
    retry = client(task, "retry", "put a FAILED task back to TODO")
    retry.add_argument("task_id")
    retry.add_argument(
        "--max-attempts", type=int, default=0, help="raise the task's attempt budget to this first"
    )
    retry.set_defaults(handler=cmd_task_retry)
    listing = client(task, "list", "list tasks")
    listing.add_argument("--orchestrator")
    listing.add_argument("--workspace")
    listing.add_argument(
        "--status", action="append", choices=["todo", "in_progress", "blocked", "done", "failed", "cancelled"]
    )
    listing.add_argument("--page-size", type=int, default=50)
    listing.add_argument("--page-token")
    listing.set_defaults(handler=cmd_task_list)

    watch = client(commands, "watch", "follow task progress live: bars on a terminal, lines otherwise")
    scope = watch.add_mutually_exclusive_group(required=True)
    scope.add_argument("--task", help="one task; the watch ends when it finishes")
    scope.add_argument("--orchestrator", help="every task of one orchestrator")
    scope.add_argument("--workspace", help="every task of one workspace")
    watch.add_argument("--after-cursor", type=int, default=0, help="resume after this event cursor")
    watch.add_argument(
        "--kind",
        action="append",
        choices=[
            kind_name(v).lower()
            for v in task_pb2.TaskEventKind.values()
            if v not in (task_pb2.TASK_EVENT_KIND_UNSPECIFIED, task_pb2.TASK_EVENT_KIND_BOOKMARK)
        ],
        help="only these event kinds (repeatable)",
    )
    watch.add_argument("--keep-open", action="store_true", help="keep a --task watch open after it finishes")
    bars = watch.add_mutually_exclusive_group()
    bars.add_argument(
        "--bars", action="store_true", default=None, help="progress bars even when not a terminal"
    )
    bars.add_argument("--lines", dest="bars", action="store_false", help="plain lines even on a terminal")
    watch.set_defaults(handler=cmd_watch)

    orchestrator = commands.add_parser("orchestrator", help="register and list orchestrators").add_subparsers(
        dest="action", required=True
    )
    register = client(orchestrator, "register", "register an orchestrator")
    register.add_argument("--name", required=True)
    register.add_argument("--id")
    register.add_argument("--role")
    register.add_argument("--discipline")
    register.add_argument("--capability", action="append")
    register.add_argument("--timezone")
    register.add_argument("--mission")
    register.set_defaults(handler=cmd_orchestrator_register)
    olist = client(orchestrator, "list", "list orchestrators")
    olist.add_argument("--page-size", type=int, default=100)
    olist.set_defaults(handler=cmd_orchestrator_list)
    rotate = client(orchestrator, "rotate-token", "issue a new token; the previous ones stop working")
    rotate.add_argument("--id", required=True)
    rotate.add_argument("--ttl", type=_duration, help="lifetime of the new token, e.g. 30d (default: none)")
    rotate.add_argument("--grace", type=_duration, help="keep the previous tokens working this long")
    rotate.set_defaults(handler=cmd_orchestrator_rotate_token)
    revoke = client(orchestrator, "revoke-tokens", "revoke every token of an orchestrator")
    revoke.add_argument("--id", required=True)
    revoke.set_defaults(handler=cmd_orchestrator_revoke_tokens)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except grpc.RpcError as error:
        print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    except WorkEngineError as error:  # from serve/migrate, before any server exists
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
