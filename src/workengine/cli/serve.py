"""`workengine serve` and `workengine migrate`: the server and its database schema."""

from __future__ import annotations

import argparse
from typing import Any

from workengine.cli.arguments import duration, positive_seconds, size
from workengine.config import (
    DEFAULT_EVENT_RETENTION,
    DEFAULT_LEASE_DURATION,
    DEFAULT_MAINTENANCE_INTERVAL,
    DEFAULT_MAX_STREAMS_PER_CLIENT,
    DEFAULT_POLL_INTERVAL,
    ServeSettings,
)


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


def add_commands(commands: Any) -> None:
    """`serve` and `migrate`, on the top-level subparsers."""
    _add_serve(commands)
    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--database-url")
    migrate.add_argument("--data-dir")
    migrate.set_defaults(handler=cmd_migrate)


def _add_serve(commands: Any) -> None:
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
        type=positive_seconds,
        help=f"seconds between event-table polls with --no-listen (default {DEFAULT_POLL_INTERVAL})",
    )
    serve.add_argument(
        "--event-retention",
        type=duration,
        help=f"how long events stay resumable, e.g. 12h or 7d (default {DEFAULT_EVENT_RETENTION}, "
        "env WORKENGINE_EVENT_RETENTION)",
    )
    serve.add_argument(
        "--lease-duration",
        type=duration,
        help=f"lease a started task holds unless the task or the start asks for another "
        f"(default {DEFAULT_LEASE_DURATION}, env WORKENGINE_LEASE_DURATION)",
    )
    serve.add_argument(
        "--maintenance-interval",
        type=positive_seconds,
        help=f"seconds between looks for expired leases and due retries (default "
        f"{DEFAULT_MAINTENANCE_INTERVAL}, env WORKENGINE_MAINTENANCE_INTERVAL)",
    )
    _add_serve_security(serve)
    serve.add_argument(
        "--max-message-size",
        type=size,
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


def _add_serve_security(serve: argparse.ArgumentParser) -> None:
    """`serve`'s authentication and TLS flags."""
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
