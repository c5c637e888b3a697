"""The WorkEngine client library for Python daemons, over the generated stubs.

    from workengine.client import WorkEngineClient          # blocking, over grpc
    from workengine.client import AsyncWorkEngineClient     # asyncio, over grpc.aio

Both take the server's `target` ("host:port"), a per-call deadline (`timeout`, seconds), a
`RetryPolicy` (jittered exponential backoff on UNAVAILABLE, for the calls that are safe to
repeat; `workengine.client.retry` lists them and says why), a `metadata` hook called before
every call (for auth tokens) and optional TLS `credentials`. Errors are `grpc.RpcError` with
the server's status code. The raw generated stubs and messages are the public package
`workengine.v1` (`work_engine_service_pb2`, `work_engine_service_pb2_grpc`, `task_pb2`,
`orchestrator_pb2`), for code that wants them directly.
"""

from workengine.client.aio import AsyncWorkEngineClient
from workengine.client.retry import IDEMPOTENT_METHODS, NO_RETRY, MetadataProvider, RetryPolicy
from workengine.client.sync import WorkEngineClient

__all__ = [
    "IDEMPOTENT_METHODS",
    "NO_RETRY",
    "AsyncWorkEngineClient",
    "MetadataProvider",
    "RetryPolicy",
    "WorkEngineClient",
]
