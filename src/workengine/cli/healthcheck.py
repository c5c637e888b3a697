"""`workengine healthcheck`: is the server on this machine SERVING? For a container's HEALTHCHECK
or a Kubernetes exec probe, also when the server speaks TLS or requires client certificates.

It reads the settings `serve` reads (the same WORKENGINE_* variables, or the same flags), asks
the gRPC health service about workengine.v1.WorkEngineService, exits 0 when it is SERVING and 1
otherwise, with one line saying why.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import ipaddress
import os
import re
import sys
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from workengine import config
from workengine.api.server import SERVICE_NAME
from workengine.config import ConfigError, ServeSettings, read_pem

# The settings of `serve` that say where the server listens and how it speaks TLS.
SETTINGS = ("host", "port", "tls_cert", "tls_key", "tls_client_ca")
WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}
DEFAULT_TIMEOUT = 3.0
_SUBJECT_ALT_NAME = bytes.fromhex("551d11")  # the OID 2.5.29.17, DER-encoded
# The first certificate of a PEM file: the server's own, before any intermediates.
_FIRST_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.DOTALL)


def target(settings: ServeSettings) -> str:
    """Where to ask: loopback when the server listens on every address, else its address."""
    host = "127.0.0.1" if settings.host.strip() in WILDCARD_HOSTS else settings.host.strip("[]")
    return f"[{host}]:{settings.port}" if ":" in host else f"{host}:{settings.port}"


def check(
    address: str, credentials: grpc.ChannelCredentials | None, server_name: str | None, timeout: float
) -> str:
    """The health status of the WorkEngine service, by name (SERVING, NOT_SERVING...)."""
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    with (
        grpc.secure_channel(address, credentials, options=options)
        if credentials is not None
        else grpc.insecure_channel(address)
    ) as channel:
        request = health_pb2.HealthCheckRequest(service=SERVICE_NAME)
        response = health_pb2_grpc.HealthStub(channel).Check(request, timeout=timeout)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def credentials(
    settings: ServeSettings, client_cert: str | None, client_key: str | None
) -> grpc.ChannelCredentials | None:
    """None for a plaintext server. With TLS, the server's own certificate is the one trusted
    (it is in the same container or pod); when the server requires client certificates, the
    health check presents `client_cert` and `client_key`, else the server's own pair."""
    if not settings.tls_cert:
        return None
    if bool(client_cert) != bool(client_key):
        raise ConfigError("WORKENGINE_HEALTHCHECK_CERT and WORKENGINE_HEALTHCHECK_KEY go together")
    if settings.tls_client_ca and not client_cert:
        client_cert, client_key = settings.tls_cert, settings.tls_key
    present = bool(settings.tls_client_ca)
    return grpc.ssl_channel_credentials(
        root_certificates=read_pem(settings.tls_cert, "--tls-cert"),
        private_key=read_pem(client_key, "the health check's key") if present else None,
        certificate_chain=read_pem(client_cert, "the health check's certificate") if present else None,
    )


def server_name(certificate_pem: bytes) -> str | None:
    """A name the certificate is valid for, to check it against instead of 127.0.0.1 (which
    a certificate rarely names): its first DNS name (a wildcard's `*` filled in), else its
    first IP address. Trusting exactly this certificate, any name it holds proves the same."""
    first = _FIRST_PEM.search(certificate_pem)
    if first is None:
        raise ValueError("no PEM certificate in it")
    dns, ips = subject_alt_names(base64.b64decode(b"".join(first[1].split())))
    if dns:
        return dns[0].replace("*", "healthcheck", 1) if dns[0].startswith("*.") else dns[0]
    return ips[0] if ips else None


def _tlv(der: bytes, offset: int) -> tuple[int, int, int]:
    """The DER element at `offset`: its tag, where its contents start, where they end."""
    tag, length, start = der[offset], der[offset + 1], offset + 2
    if length & 0x80:  # long form: the next (length & 0x7f) bytes hold the length
        size = length & 0x7F
        length, start = int.from_bytes(der[start : start + size], "big"), start + size
    return tag, start, start + length


def _children(der: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    found = []
    while start < end:
        element = _tlv(der, start)
        found.append(element)
        start = element[2]
    return found


def subject_alt_names(der: bytes) -> tuple[list[str], list[str]]:
    """The DNS names and IP addresses of an X.509 certificate's subjectAltName extension.
    (The standard library decodes certificates only of peers or of CAs it loaded.)"""
    _, start, end = _tlv(der, 0)  # Certificate
    _, start, end = _tlv(der, start)  # TBSCertificate
    extensions = [child for child in _children(der, start, end) if child[0] == 0xA3]  # [3]
    dns: list[str] = []
    ips: list[str] = []
    for _, start, end in extensions:
        _, start, end = _tlv(der, start)  # SEQUENCE OF Extension
        for _, ext_start, ext_end in _children(der, start, end):
            parts = _children(der, ext_start, ext_end)  # extnID, critical?, extnValue
            if der[parts[0][1] : parts[0][2]] != _SUBJECT_ALT_NAME:
                continue
            _, names_start, names_end = _tlv(der, parts[-1][1])  # GeneralNames, in the OCTET STRING
            for tag, name_start, name_end in _children(der, names_start, names_end):
                value = der[name_start:name_end]
                if tag == 0x82:  # [2] dNSName
                    dns.append(value.decode("ascii"))
                elif tag == 0x87:  # [7] iPAddress
                    ips.append(str(ipaddress.ip_address(value)))
    return dns, ips


class Unhealthy(Exception):
    """The check ran and the answer is no."""


def cmd_healthcheck(args: argparse.Namespace) -> None:
    flags = {field: getattr(args, field, None) for field in SETTINGS}
    settings = ServeSettings.from_sources(flags, only=SETTINGS)
    name = args.server_name
    if settings.tls_cert and not name:
        pem = read_pem(settings.tls_cert, "--tls-cert")
        assert pem is not None
        try:
            name = server_name(pem)
        except (ValueError, IndexError, binascii.Error) as error:
            raise ConfigError(
                f"cannot read the names in {settings.tls_cert} ({error}): set "
                "WORKENGINE_HEALTHCHECK_SERVER_NAME to one of them"
            ) from None
    address = target(settings)
    try:
        status = check(address, credentials(settings, args.client_cert, args.client_key), name, args.timeout)
    except grpc.RpcError as error:
        details = " ".join(str(error.details()).split())
        raise Unhealthy(f"unhealthy: {address}: {error.code().name}: {details}") from None
    if status != "SERVING":
        raise Unhealthy(f"unhealthy: {address}: {SERVICE_NAME} is {status}")


def _run(args: argparse.Namespace) -> None:
    """Any failure, a setting that does not work included, is exit status 1: Docker reserves
    2 in a HEALTHCHECK, and a probe that cannot even run must not pass."""
    try:
        cmd_healthcheck(args)
    except Unhealthy as unhealthy:
        print(unhealthy, file=sys.stderr)
        sys.exit(1)
    except ConfigError as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        sys.exit(1)


def add_commands(commands: Any) -> None:
    """`healthcheck`, on the top-level subparsers."""
    parser = commands.add_parser(
        "healthcheck",
        help="exit 0 if the local server is SERVING, 1 if not (for container health checks)",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    config.add_arguments(parser, only=SETTINGS)
    env = os.environ.get
    parser.add_argument(
        "--client-cert", default=env("WORKENGINE_HEALTHCHECK_CERT"),
        help="certificate to present when the server requires one (default: the server's own; "
        "env WORKENGINE_HEALTHCHECK_CERT)",
    )  # fmt: skip
    parser.add_argument(
        "--client-key", default=env("WORKENGINE_HEALTHCHECK_KEY"),
        help="its private key (env WORKENGINE_HEALTHCHECK_KEY)",
    )  # fmt: skip
    parser.add_argument(
        "--server-name", default=env("WORKENGINE_HEALTHCHECK_SERVER_NAME"),
        help="name to verify the server's certificate against (default: the first it names; "
        "env WORKENGINE_HEALTHCHECK_SERVER_NAME)",
    )  # fmt: skip
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait (default {DEFAULT_TIMEOUT:g})",
    )
    parser.set_defaults(handler=_run)
