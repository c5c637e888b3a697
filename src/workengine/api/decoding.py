"""Request decoding that cannot fail: bytes that are not a valid request message reach the
handler as `Undecodable`, and the error mapping answers INVALID_ARGUMENT.

grpcio's own decoding path answers a DecodeError (invalid UTF-8 in a string field, a
truncated message, nesting past the parser's limit) with UNKNOWN and a message naming the
Python exception, which tells a client neither what it did wrong nor that retrying is
useless. The handlers are built from the service descriptor, so every RPC gets this,
including ones added later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from workengine.v1 import work_engine_service_pb2

SERVICE = work_engine_service_pb2.DESCRIPTOR.services_by_name["WorkEngineService"]


class Undecodable:
    """Stands in for a request whose bytes do not parse as `message_name`."""

    def __init__(self, message_name: str) -> None:
        self.message_name = message_name


def tolerant_parser(message_class: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    def parse(data: bytes) -> Message | Undecodable:
        try:
            return message_class.FromString(data)
        except (DecodeError, RecursionError, ValueError):
            return Undecodable(message_class.DESCRIPTOR.name)

    return parse


def add_work_engine_service(servicer: Any, server: grpc.aio.Server) -> None:
    """What the generated add_WorkEngineServiceServicer_to_server does, with tolerant parsing."""
    handlers = {}
    for method in SERVICE.methods:
        request = GetMessageClass(method.input_type)
        response = GetMessageClass(method.output_type)
        make = (
            grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=tolerant_parser(request),
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),))
    server.add_registered_method_handlers(SERVICE.full_name, handlers)
