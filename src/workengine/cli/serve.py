"""`workengine serve` and `workengine migrate`: the server and its database schema."""

from __future__ import annotations

import argparse
from typing import Any

from workengine import config
from workengine.config import ServeSettings


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    return {setting.field: getattr(args, setting.field, None) for setting in config.SETTINGS}


def cmd_serve(args: argparse.Namespace) -> None:
    from workengine.serve import serve

    serve(ServeSettings.from_sources(_flags(args)))


def cmd_migrate(args: argparse.Namespace) -> None:
    from workengine.serve import resolve_database_url
    from workengine.store.migrate import migrate

    location = ServeSettings.from_sources(_flags(args), only=MIGRATE_SETTINGS)
    newer = migrate(resolve_database_url(location))
    if newer is None:
        print("database schema is up to date")
    else:
        print(f"database schema is at {newer}, newer than this release's: nothing to migrate")


MIGRATE_SETTINGS = ("database_url", "data_dir")


def add_commands(commands: Any) -> None:
    """`serve` and `migrate`, on the top-level subparsers."""
    serve = commands.add_parser("serve", help="run the gRPC server")
    config.add_arguments(serve)
    serve.set_defaults(handler=cmd_serve)
    migrate = commands.add_parser("migrate", help="apply database migrations")
    config.add_arguments(migrate, only=MIGRATE_SETTINGS)
    migrate.set_defaults(handler=cmd_migrate)
