"""`workengine.v1` is a public module: another Python project can import the raw generated stubs
and call the service with them, sync or asyncio."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile

import grpc

import workengine.v1
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc


def test_the_public_modules_import_from_outside_the_repository() -> None:
    script = (
        "from workengine.v1 import *\n"
        "service = work_engine_service_pb2.DESCRIPTOR.services_by_name['WorkEngineService']\n"
        "assert work_engine_service_pb2_grpc.WorkEngineServiceStub\n"
        "print(len(service.methods), task_pb2.TaskStatus.Name(4))\n"
        "print(orchestrator_pb2.OrchestratorStatus.Name(1))\n"
    )
    with tempfile.TemporaryDirectory() as elsewhere:
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert result.returncode == 0, result.stderr
    service = pb.DESCRIPTOR.services_by_name["WorkEngineService"]
    assert result.stdout.split() == [
        str(len(service.methods)),
        "TASK_STATUS_DONE",
        "ORCHESTRATOR_STATUS_ONLINE",
    ]
    assert set(workengine.v1.__all__) == {
        "orchestrator_pb2",
        "task_pb2",
        "work_engine_service_pb2",
        "work_engine_service_pb2_grpc",
    }


def test_the_stub_has_a_method_for_every_rpc(target: str) -> None:
    service = pb.DESCRIPTOR.services_by_name["WorkEngineService"]
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.WorkEngineServiceStub(channel)
        assert all(callable(getattr(stub, method.name)) for method in service.methods)


async def test_raw_stubs_call_the_live_server_sync_and_asyncio(target: str) -> None:
    def sync_call() -> grpc.StatusCode:
        with grpc.insecure_channel(target) as channel:
            try:
                pb_grpc.WorkEngineServiceStub(channel).GetTask(pb.GetTaskRequest(task_id="nope"), timeout=10)
            except grpc.RpcError as error:
                return error.code()
        raise AssertionError("GetTask of an unknown id succeeded")

    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.WorkEngineServiceStub(channel)
        registered = await stub.RegisterOrchestrator(
            pb.RegisterOrchestratorRequest(orchestrator_id="ada", display_name="Ada"), timeout=10
        )

    assert registered.orchestrator.id == "ada"
    assert await asyncio.to_thread(sync_call) == grpc.StatusCode.NOT_FOUND
