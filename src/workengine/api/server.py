"""Assembles the grpc.aio server: WorkEngineService, health, reflection; graceful stop."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from workengine.api.reflection import add_reflection
from workengine.api.servicer import WorkEngineServicer
from workengine.engine import WorkEngine
from workengine.v1 import work_engine_service_pb2, work_engine_service_pb2_grpc

SERVICE_NAME = work_engine_service_pb2.DESCRIPTOR.services_by_name["WorkEngineService"].full_name
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


class BindError(RuntimeError):
    pass


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    engine: WorkEngine
    health: health.aio.HealthServicer

    async def stop(self, grace: float = 5.0) -> None:
        """Report NOT_SERVING, end watch streams and long polls, let unary calls finish within `grace`."""
        await self.health.enter_graceful_shutdown()
        self.engine.hub.close()
        await self.server.stop(grace)


async def start_server(engine: WorkEngine, host: str = "127.0.0.1", port: int = 50051) -> RunningServer:
    server = grpc.aio.server(
        options=[
            # grpcio enables SO_REUSEPORT by default: a second server would silently share the port.
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
    )
    work_engine_service_pb2_grpc.add_WorkEngineServiceServicer_to_server(WorkEngineServicer(engine), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    # Reflection answers with the commented descriptors, so `grpcurl describe` shows the docs.
    add_reflection((SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as error:
        raise BindError(f"cannot listen on {address}: {error}") from None
    if bound == 0:
        raise BindError(f"cannot listen on {address}: address in use or not available")
    await server.start()
    engine.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server=server, port=bound, engine=engine, health=health_servicer)
