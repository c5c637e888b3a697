"""Assembles the grpc.aio server: WorkEngineService, health, reflection; graceful stop."""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from workengine.api.call_context import CallContext
from workengine.api.decoding import add_work_engine_service
from workengine.api.guard import DEFAULT_MAX_STREAMS_PER_CLIENT, Guard
from workengine.api.metrics_interceptor import MetricsInterceptor
from workengine.api.reflection import add_reflection
from workengine.api.servicer import WorkEngineServicer
from workengine.engine import WorkEngine
from workengine.engine.execution import MAX_CLAIM_WAIT
from workengine.telemetry.metrics import RpcMetrics
from workengine.v1 import work_engine_service_pb2

SERVICE_NAME = work_engine_service_pb2.DESCRIPTOR.services_by_name["WorkEngineService"].full_name
DEFAULT_PORT = 50051
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# Seconds calls in flight get to finish once a shutdown begins.
DEFAULT_SHUTDOWN_GRACE = 5.0
# Seconds calls on a connection past its maximum age get before it is closed: a claim waiting
# its longest still answers on the old connection. Watch streams run longer and are cut then;
# their clients resume from the last cursor on another connection (docs/operations.md).
DEFAULT_MAX_CONNECTION_AGE_GRACE = MAX_CLAIM_WAIT.total_seconds() + 30


class BindError(RuntimeError):
    pass


def listen_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_port_free(host: str, port: int, what: str = "") -> None:
    """BindError, in one line, when the port is taken: grpcio would also log its own error line
    from the C core. (A race with another process remains; the bind itself then refuses.)"""
    if port == 0:
        return
    address = listen_address(host, port) + what
    try:
        with socket.create_server((host.strip("[]"), port), family=_family(host)):
            pass
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise BindError(f"cannot listen on {address}: the port is in use") from None
        if error.errno == errno.EADDRNOTAVAIL:
            raise BindError(f"cannot listen on {address}: no such address on this machine") from None


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


@dataclass(frozen=True)
class TlsFiles:
    """PEM contents. With `client_ca`, clients must present a certificate it signed (mTLS)."""

    certificate: bytes
    private_key: bytes
    client_ca: bytes | None = None

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.private_key, self.certificate)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )


@dataclass(frozen=True)
class Security:
    """Authentication (on when `admin_token` is set), TLS, and per-client limits."""

    admin_token: str | None = None
    tls: TlsFiles | None = None
    # Largest request message accepted; larger ones are refused with RESOURCE_EXHAUSTED.
    max_message_bytes: int = MAX_MESSAGE_BYTES
    # Concurrent WatchTaskProgress streams per principal (auth on) or client address (auth
    # off); 0: unlimited.
    max_streams_per_client: int = DEFAULT_MAX_STREAMS_PER_CLIENT
    extra_options: tuple[tuple[str, int], ...] = field(default=())
    # Seconds after which the server asks a client to reconnect (GOAWAY; gRPC adds +-10% jitter),
    # so that long-lived channels spread over replicas behind a per-connection balancer such
    # as a Kubernetes Service. None: connections live as long as the client keeps them.
    max_connection_age: float | None = None
    max_connection_age_grace: float = DEFAULT_MAX_CONNECTION_AGE_GRACE

    def connection_options(self) -> list[tuple[str, int]]:
        """grpc.max_connection_age_ms and its grace, when a maximum age is set."""
        if self.max_connection_age is None:
            return []
        return [
            ("grpc.max_connection_age_ms", round(self.max_connection_age * 1000)),
            ("grpc.max_connection_age_grace_ms", round(self.max_connection_age_grace * 1000)),
        ]


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    engine: WorkEngine
    health: health.aio.HealthServicer
    guard: Guard | None = None

    async def stop(self, grace: float = DEFAULT_SHUTDOWN_GRACE) -> None:
        """Report NOT_SERVING, end watch streams and long polls, let unary calls finish within `grace`."""
        await self.health.enter_graceful_shutdown()
        self.engine.stop_serving()
        await self.server.stop(grace)


async def start_server(
    engine: WorkEngine,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    security: Security | None = None,
    metrics: RpcMetrics | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> RunningServer:
    """With `metrics`, every call is counted (outermost, so the guard's refusals count too).
    `interceptors` come next, before the guard (tracing's: its spans show refusals too)."""
    security = security or Security()
    guard = Guard(
        engine,
        SERVICE_NAME,
        admin_token=security.admin_token,
        max_streams_per_client=security.max_streams_per_client,
    )
    server = grpc.aio.server(
        # CallContext first: the other interceptors' log records name the call.
        interceptors=[
            CallContext(),
            *([MetricsInterceptor(metrics)] if metrics is not None else []),
            *interceptors,
            guard,
        ],
        options=[
            # grpcio enables SO_REUSEPORT by default: a second server would silently share the port.
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", security.max_message_bytes),
            ("grpc.max_send_message_length", max(MAX_MESSAGE_BYTES, security.max_message_bytes)),
            *security.connection_options(),
            *security.extra_options,
        ],
    )
    # Not the generated add_WorkEngineServiceServicer_to_server: undecodable requests must be
    # INVALID_ARGUMENT, not grpcio's UNKNOWN (see api/decoding.py).
    add_work_engine_service(WorkEngineServicer(engine), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    # Reflection answers with the commented descriptors, so `grpcurl describe` shows the docs.
    add_reflection((SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server)
    address = listen_address(host, port)
    check_port_free(host, port)
    try:
        if security.tls is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, security.tls.credentials())
    except RuntimeError as error:
        raise BindError(f"cannot listen on {address}: {error}") from None
    if bound == 0:
        raise BindError(f"cannot listen on {address}: address in use or not available")
    await server.start()
    engine.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server=server, port=bound, engine=engine, health=health_servicer, guard=guard)
