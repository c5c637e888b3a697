"""The real WorkEngine server plus an empty method, for the transport benchmark only.

    python -m bench.echo_server --port 0 --database-url postgresql://...

`workengine serve` as it ships (same `workengine.serve.run`, same `start_server`), with one
more service registered on the same grpc.aio server before it starts: `bench.Echo/Empty`,
which answers a `google.protobuf.Empty` with an empty one and does nothing else. GetTask
against Empty on one server and one client is then the engine's cost over gRPC's own.
`start_server` builds its server internally, so the service is added by wrapping
`grpc.aio.server` in this process; the product code is unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from google.protobuf import empty_pb2

from bench.server import server_arguments
from workengine.config import ServeSettings
from workengine.serve import run

SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Empty"


async def empty(request: empty_pb2.Empty, context: Any) -> empty_pb2.Empty:
    return empty_pb2.Empty()


ECHO = grpc.method_handlers_generic_handler(
    SERVICE,
    {
        "Empty": grpc.unary_unary_rpc_method_handler(
            empty,
            request_deserializer=empty_pb2.Empty.FromString,
            response_serializer=empty_pb2.Empty.SerializeToString,
        )
    },
)


def install() -> None:
    """Every grpc.aio server built in this process from now on also serves bench.Echo."""
    build = grpc.aio.server

    def server_with_echo(*args: Any, **kwargs: Any) -> grpc.aio.Server:
        server = build(*args, **kwargs)
        server.add_generic_rpc_handlers((ECHO,))
        return server

    grpc.aio.server = server_with_echo


def main() -> None:
    args = server_arguments(__doc__ or "")
    install()
    settings = ServeSettings.from_sources({"port": args.port, "database_url": args.database_url})
    asyncio.run(run(settings, args.database_url))


if __name__ == "__main__":
    main()
