"""`workengine orchestrator ...`: register, list, see and set the status of orchestrators,
and manage their tokens."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from workengine.cli.arguments import duration
from workengine.cli.connection import client_command
from workengine.cli.output import enum_name, enum_value, show, summary, table, when
from workengine.client import WorkEngineClient, requests
from workengine.v1 import orchestrator_pb2
from workengine.v1 import work_engine_service_pb2 as pb

STATUSES = ("online", "away", "busy", "offline")


def status_name(value: int) -> str:
    return enum_name(orchestrator_pb2.OrchestratorStatus, value, "ORCHESTRATOR_STATUS_")


def _status_value(name: str) -> Any:
    return enum_value(orchestrator_pb2.OrchestratorStatus, name, "ORCHESTRATOR_STATUS_")


def orchestrator_summary(orchestrator: orchestrator_pb2.Orchestrator) -> str:
    return summary(
        f"orchestrator {orchestrator.id}: {orchestrator.display_name}",
        [
            ("status", status_name(orchestrator.status)),
            ("role", orchestrator.role),
            ("discipline", orchestrator.discipline),
            ("capabilities", ", ".join(orchestrator.capabilities)),
            ("timezone", orchestrator.timezone),
            ("mission", orchestrator.charter.mission),
            ("endpoint", orchestrator.daemon_endpoint),
            ("last seen", when(orchestrator.last_heartbeat_time)),
            ("registered", when(orchestrator.create_time)),
        ],
    )


def orchestrator_table(orchestrators: Sequence[orchestrator_pb2.Orchestrator]) -> str:
    if not orchestrators:
        return "no orchestrators"
    rows = [
        [o.id, o.display_name, status_name(o.status), o.role, o.timezone, when(o.last_heartbeat_time)]
        for o in orchestrators
    ]
    return table(["ID", "NAME", "STATUS", "ROLE", "TIMEZONE", "LAST SEEN"], rows)


def cmd_register(client: WorkEngineClient, args: argparse.Namespace) -> None:
    request = requests.register_orchestrator(
        args.name,
        args.id or "",
        args.timezone or "",
        args.capability or [],
        args.role or "",
        args.discipline or "",
        orchestrator_pb2.Charter(mission=args.mission or ""),
    )
    # call(), not register_orchestrator(): that one returns only the orchestrator, not its token.
    response: pb.RegisterOrchestratorResponse = client.call("RegisterOrchestrator", request)
    show(args, response.orchestrator, orchestrator_summary(response.orchestrator))
    # Shown once (the server keeps only a hash); on stderr so stdout stays the orchestrator.
    print(
        f"token (shown once; `workengine orchestrator rotate-token` issues another): {response.token}",
        file=sys.stderr,
    )


def cmd_list(client: WorkEngineClient, args: argparse.Namespace) -> None:
    request = pb.ListOrchestratorsRequest(
        status=_status_value(args.status or "unspecified"),
        page_size=args.page_size,
        page_token=args.page_token or "",
    )
    page: pb.ListOrchestratorsResponse = client.call("ListOrchestrators", request)
    more = f"\nmore: --page-token {page.next_page_token}" if page.next_page_token else ""
    show(args, page, orchestrator_table(page.orchestrators) + more)


def cmd_status(client: WorkEngineClient, args: argparse.Namespace) -> None:
    if args.status is None:
        orchestrator = client.get_orchestrator(args.id)
    else:
        orchestrator = client.set_orchestrator_status(args.id, _status_value(args.status))
    show(args, orchestrator, orchestrator_summary(orchestrator))


def cmd_rotate_token(client: WorkEngineClient, args: argparse.Namespace) -> None:
    response = client.rotate_orchestrator_token(args.id, token_ttl=args.ttl, previous_token_grace=args.grace)
    expires = when(response.token_expire_time) or "never"
    text = f"token (shown once): {response.token}\nexpires: {expires}"
    show(args, response, text)


def cmd_revoke_tokens(client: WorkEngineClient, args: argparse.Namespace) -> None:
    revoked = client.revoke_orchestrator_tokens(args.id)
    text = f"revoked {revoked} token{'' if revoked == 1 else 's'} of {args.id}"
    show(args, pb.RevokeOrchestratorTokensResponse(revoked_count=revoked), text)


def add_commands(commands: Any) -> None:
    """`orchestrator` and its subcommands, on the top-level subparsers."""
    orchestrator = commands.add_parser(
        "orchestrator", help="register, list and set the status of orchestrators; manage their tokens"
    ).add_subparsers(dest="action", required=True)
    register = client_command(
        orchestrator,
        "register",
        "register an orchestrator; its token is printed once, on stderr",
        cmd_register,
    )
    register.add_argument("--name", required=True)
    register.add_argument("--id")
    register.add_argument("--role")
    register.add_argument("--discipline")
    register.add_argument("--capability", action="append")
    register.add_argument("--timezone")
    register.add_argument("--mission")
    listing = client_command(orchestrator, "list", "list orchestrators, oldest first", cmd_list)
    listing.add_argument("--status", choices=STATUSES, help="only orchestrators in this status")
    listing.add_argument("--page-size", type=int, default=100)
    listing.add_argument("--page-token", help="the next page, as the previous one said")
    status = client_command(
        orchestrator,
        "status",
        "show an orchestrator, or set its status (work goes to ONLINE and BUSY ones)",
        cmd_status,
    )
    status.add_argument("id")
    status.add_argument("status", nargs="?", choices=STATUSES, help="the new status; omitted: just show it")
    _add_token_commands(orchestrator)


def _add_token_commands(orchestrator: Any) -> None:
    rotate = client_command(
        orchestrator, "rotate-token", "issue a new token; the previous ones stop working", cmd_rotate_token
    )
    rotate.add_argument("--id", required=True)
    rotate.add_argument("--ttl", type=duration, help="lifetime of the new token, e.g. 30d (default: none)")
    rotate.add_argument("--grace", type=duration, help="keep the previous tokens working this long")
    revoke = client_command(
        orchestrator, "revoke-tokens", "revoke every token of an orchestrator", cmd_revoke_tokens
    )
    revoke.add_argument("--id", required=True)
