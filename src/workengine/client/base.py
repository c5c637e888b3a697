"""What the sync and asyncio clients share: settings, per-call deadline and metadata, the stub."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc

from workengine.client.retry import Metadata, MetadataProvider, RetryPolicy
from workengine.client.tracing import propagation_metadata
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

DEFAULT_TARGET = "localhost:50051"
DEFAULT_TIMEOUT = 10.0
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Notice a dead connection between long polls instead of waiting for the next call.
    ("grpc.keepalive_time_ms", 30_000),
)


class ClientBase:
    """Connection target, deadline, retry policy and metadata hook; see the client classes.

    `channel`, when given, is used as is (and closed by `close()`); otherwise the subclass
    opens one to `target`, plaintext or with TLS `credentials`.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        metadata: MetadataProvider | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        channel: grpc.Channel | grpc.aio.Channel | None = None,
        token: str | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._metadata = metadata
        self._authorization: Metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.channel = channel if channel is not None else self._open_channel(target, credentials)
        self.stub = pb_grpc.WorkEngineServiceStub(self.channel)  # type: ignore[no-untyped-call]

    def _open_channel(self, target: str, credentials: grpc.ChannelCredentials | None) -> Any:
        raise NotImplementedError

    def call_metadata(self, method: str) -> Metadata | None:
        """The bearer token, if any, the current trace context when the program traces
        (client/tracing.py), and what the metadata hook returns for `method` (asked again
        before every attempt; a traceparent it returns replaces the current one)."""
        hooked = self._metadata(method) if self._metadata is not None else ()
        if any(key == "traceparent" for key, _ in hooked):
            return (*self._authorization, *hooked)
        return (*self._authorization, *propagation_metadata(), *hooked) or None

    def deadline(self, timeout: float | None, wait: timedelta | None = None) -> float | None:
        """Seconds for one attempt: the call's own timeout or the client's, plus a long poll's wait."""
        chosen = self.timeout if timeout is None else timeout
        if chosen is None:
            return None
        return chosen + (wait.total_seconds() if wait else 0.0)
