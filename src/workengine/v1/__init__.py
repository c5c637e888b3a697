"""WorkEngine's v1 protocol for Python: the generated messages and gRPC stubs (public API).

    import grpc
    from workengine.v1 import work_engine_service_pb2 as pb, work_engine_service_pb2_grpc as pb_grpc

    stub = pb_grpc.WorkEngineServiceStub(grpc.insecure_channel("localhost:50051"))
    task = stub.GetTask(pb.GetTaskRequest(task_id="t-1"), timeout=10).task

Modules: work_engine_service_pb2 (every request and response, CompletionStatus,
ExecuteOutcome), work_engine_service_pb2_grpc (WorkEngineServiceStub for clients,
WorkEngineServiceServicer and add_WorkEngineServiceServicer_to_server for fakes in tests;
grpc.aio channels work too), task_pb2 and orchestrator_pb2 (the resources and their enums),
each with a .pyi for type checkers, and workengine_descriptor_set.binpb (every file with
its comments, for tools). For deadlines, retries and typed helpers use `workengine.client`.

Generated from protos/workengine/v1 by scripts/generate_protos.py. Do not edit.
"""

__all__ = ["orchestrator_pb2", "task_pb2", "work_engine_service_pb2", "work_engine_service_pb2_grpc"]
