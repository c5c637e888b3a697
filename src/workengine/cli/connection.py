"""The client commands' connection: a `workengine.client.WorkEngineClient` from --target,
--token and the TLS flags, so every call gets the client's deadline, retries and typed errors."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import grpc

from workengine.cli.output import add_output_flag
from workengine.client import WorkEngineClient
from workengine.client.base import DEFAULT_TIMEOUT
from workengine.config import ConfigError, default_target, default_token, read_pem

Command = Callable[[WorkEngineClient, argparse.Namespace], None]


def client_command(
    subparsers: Any, name: str, help_text: str, command: Command, *, deadline: bool = True
) -> argparse.ArgumentParser:
    """A subcommand that talks to the server: the connection flags, --output, and a handler
    that runs `command` with a connected client. `deadline`: whether --timeout applies."""
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help_text)
    parser.add_argument("--target", default=default_target(), help="server address (env WORKENGINE_TARGET)")
    parser.add_argument(
        "--token", default=default_token(), help="bearer token to send (env WORKENGINE_TOKEN)"
    )
    parser.add_argument("--tls", action="store_true", help="connect with TLS (system CAs)")
    parser.add_argument("--tls-ca", help="connect with TLS, trusting this CA (PEM)")
    parser.add_argument("--tls-client-cert", help="client certificate for mTLS (PEM)")
    parser.add_argument("--tls-client-key", help="client private key for mTLS (PEM)")
    if deadline:
        parser.add_argument(
            "--timeout",
            type=float,
            default=DEFAULT_TIMEOUT,
            help="seconds each call may take before it fails with DEADLINE_EXCEEDED "
            f"(default {DEFAULT_TIMEOUT:g})",
        )
    add_output_flag(parser)
    parser.set_defaults(handler=lambda args: _run(command, args))
    return parser


def _run(command: Command, args: argparse.Namespace) -> None:
    with connect(args) as client:
        command(client, args)


def connect(args: argparse.Namespace) -> WorkEngineClient:
    """A client for the connection flags in `args`."""
    return WorkEngineClient(
        args.target,
        timeout=getattr(args, "timeout", DEFAULT_TIMEOUT),
        token=args.token or None,
        credentials=credentials(args),
    )


def credentials(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    """TLS credentials for --tls, --tls-ca and the mTLS pair; None for plaintext."""
    if not (args.tls or args.tls_ca or args.tls_client_cert or args.tls_client_key):
        return None
    if bool(args.tls_client_cert) != bool(args.tls_client_key):
        raise ConfigError("--tls-client-cert and --tls-client-key go together")
    return grpc.ssl_channel_credentials(
        root_certificates=read_pem(args.tls_ca, "--tls-ca"),
        private_key=read_pem(args.tls_client_key, "--tls-client-key"),
        certificate_chain=read_pem(args.tls_client_cert, "--tls-client-cert"),
    )
