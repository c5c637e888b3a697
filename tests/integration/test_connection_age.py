"""--max-connection-age: the server closes connections older than the age, clients reconnect on
their own, and calls keep succeeding. Behind a Kubernetes Service (which balances connections,
not calls) that is what spreads long-lived channels over new replicas.

The client talks to the server through a TCP relay of the test's own, which counts the
connections the client opens and reads the HTTP/2 frames the server sends on each, to see the
server's GOAWAY (the request to go elsewhere) whatever gRPC does inside one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration.helpers import create, register
from workengine.api.server import SERVICE_NAME, Security, start_server
from workengine.engine import WorkEngine
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

GOAWAY = 0x7


@dataclass
class Relay:
    """Forwards every connection to `backend_port`; one record per connection, in order."""

    backend_port: int
    # Per connection accepted, the debug data of each GOAWAY frame the server sent on it.
    goaways: list[list[bytes]] = field(default_factory=list)
    port: int = 0

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        goaways: list[bytes] = []
        self.goaways.append(goaways)
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
        to_server = asyncio.create_task(_pipe(client_reader, server_writer))
        to_client = asyncio.create_task(_pipe(server_reader, client_writer, goaways))
        _, pending = await asyncio.wait({to_server, to_client}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for writer in (client_writer, server_writer):
            writer.close()


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, goaways: list[bytes] | None = None
) -> None:
    """Copies until the reader's side closes; with `goaways`, reads the copied bytes as HTTP/2
    frames (a server sends no preface before them) and appends each GOAWAY's debug data."""
    pending = b""
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
            if goaways is None:
                continue
            pending += chunk
            # A frame: 3 bytes of payload length, a type byte (7 is GOAWAY), flags, stream id.
            while len(pending) >= 9 and len(pending) >= 9 + int.from_bytes(pending[:3], "big"):
                length, kind = int.from_bytes(pending[:3], "big"), pending[3]
                if kind == GOAWAY:  # payload: last stream id (4), error code (4), debug data
                    goaways.append(pending[9 + 8 : 9 + length])
                pending = pending[9 + length :]


@contextlib.asynccontextmanager
async def relay_to(port: int) -> AsyncIterator[Relay]:
    relay = Relay(port)
    listener = await asyncio.start_server(relay.handle, "127.0.0.1", 0)
    relay.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield relay


async def keep_calling(relay: Relay, seconds: float) -> int:
    """Calls (health and a WorkEngine RPC) every 50 ms for `seconds` over one channel; returns
    how many rounds succeeded (a failure raises)."""
    succeeded = 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{relay.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        stub = pb_grpc.WorkEngineServiceStub(channel)
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            checked = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5)
            assert checked.status == health_pb2.HealthCheckResponse.SERVING
            await stub.ListOrchestrators(pb.ListOrchestratorsRequest(), timeout=5)
            succeeded += 1
            await asyncio.sleep(0.05)
    return succeeded


@pytest.mark.parametrize("age", [1.0, None], ids=["age-1s", "age-off"])
async def test_connections_older_than_the_age_are_closed_and_clients_reconnect(
    engine: WorkEngine, age: float | None
) -> None:
    security = Security(max_connection_age=age, max_connection_age_grace=0.5)
    running = await start_server(engine, "127.0.0.1", 0, security)
    try:
        async with relay_to(running.port) as relay:
            succeeded = await keep_calling(relay, 4.0)
            goaways = [list(sent) for sent in relay.goaways]
    finally:
        await running.stop(0)
    assert succeeded >= 20, f"only {succeeded} rounds of calls in 4 s"
    if age is None:
        # The control: without an age, one connection carries every call and the server never
        # asks the client to leave it.
        assert goaways == [[]], goaways
        return
    # About one connection a second (the age, with gRPC's +-10% jitter); the server sent a
    # GOAWAY on every connection but the last, and the client moved on while calls succeeded.
    assert len(goaways) >= 3, f"the client opened {len(goaways)} connection(s) in 4 s with a 1 s age"
    assert all(b"max_age" in b"".join(sent) for sent in goaways[:-1]), goaways


async def test_a_watch_stream_is_cut_after_the_age_and_its_grace_and_can_resume(engine: WorkEngine) -> None:
    """A stream outlives any grace: it ends with UNAVAILABLE (as at a server's shutdown), and
    the watcher resumes from its last cursor on a new connection (docs/operations.md)."""
    security = Security(max_connection_age=1.0, max_connection_age_grace=0.5)
    running = await start_server(engine, "127.0.0.1", 0, security)
    try:
        # The connection's age counts from its first call, the registration below.
        started = asyncio.get_running_loop().time()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.WorkEngineServiceStub(channel)
            await register(stub, "ada")
            await create(stub, "before the cut")
            request = pb.WatchTaskProgressRequest(orchestrator_id="ada")
            cursor = 0
            with pytest.raises(grpc.aio.AioRpcError) as cut:
                async for response in stub.WatchTaskProgress(request, timeout=10):
                    cursor = max(cursor, response.event.cursor)
            lasted = asyncio.get_running_loop().time() - started
            assert cut.value.code() == grpc.StatusCode.UNAVAILABLE, cut.value
            # Age (1 s, +-10%) plus grace (0.5 s), with slack for a busy machine; not the 10 s deadline.
            assert 1.2 <= lasted <= 5, lasted
            assert cursor > 0, "the snapshot carried no cursor"
            # The same channel reconnects by itself; the watch resumes after its last cursor.
            request.after_cursor = cursor
            resumed = stub.WatchTaskProgress(request, timeout=5)
            created = await create(stub, "after the cut")
            response = await resumed.read()
            assert response is not grpc.aio.EOF and response.event.task.id == created.id, response
            resumed.cancel()
    finally:
        await running.stop(0)
