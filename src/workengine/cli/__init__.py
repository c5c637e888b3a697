"""The `workengine` command: serve, migrate, watch, stats, explain, and task/orchestrator commands.

Each command group is a module: serve.py (serve, migrate), healthcheck.py, tasks.py,
orchestrators.py, watch.py, stats.py, explain.py. The client commands connect through
`workengine.client` (connection.py) and print for a person, or JSON with --output json (output.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc

from workengine.cli import explain, healthcheck, orchestrators, serve, stats, tasks, watch
from workengine.config import ConfigError
from workengine.domain import errors as domain_errors
from workengine.logs import redact


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workengine", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for group in (serve, healthcheck, tasks, watch, orchestrators, stats, explain):
        group.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except grpc.RpcError as error:  # the client's typed errors are grpc.RpcErrors too
        print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    # From serve/migrate, before any server exists; a database's message may quote its URL.
    except domain_errors.WorkEngineError as error:
        print(f"error: {redact(error.message)}", file=sys.stderr)
        return 2
    except ConfigError as error:
        print(f"error: {redact(str(error))}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
