"""What the server interceptors share: a method handler with one behaviour replaced.

grpc's handlers keep the request and response (de)serializers beside the behaviour, so an
interceptor that wraps the behaviour builds a new handler of the same kind around it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

Behavior = Callable[[Any, Any], Any]

FACTORIES: dict[str, Callable[..., grpc.RpcMethodHandler]] = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}


def kind_of(handler: grpc.RpcMethodHandler) -> str | None:
    """Which of the four behaviours `handler` has ("unary_unary", ...)."""
    return next((kind for kind in FACTORIES if getattr(handler, kind) is not None), None)


def rewrapped(handler: grpc.RpcMethodHandler, kind: str, behavior: Behavior) -> grpc.RpcMethodHandler:
    """`handler` with its `kind` behaviour replaced by `behavior`."""
    return FACTORIES[kind](
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
