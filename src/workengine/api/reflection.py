"""Server reflection that carries the protos' comments, so `grpcurl describe` shows them.

grpcio's reflection servicer answers with `FileDescriptor.CopyToProto()` from a descriptor
pool, and the descriptors Python's generated code embeds carry no `source_code_info` (the
comments): protobuf's upb backend drops it even when a pool is built from a set that has it.
So this servicer keeps grpcio's lookup logic and replaces each returned file by its copy in
`workengine_descriptor_set.binpb`, which `scripts/generate_protos.py` builds with
`--include_source_info`. Files not in the set (health, reflection) are served as before.

More differences from grpcio's servicer, all so that strangers' tools work unchanged:
- A method (`Service.Method`) is found by its service, and an enum value (`TASK_STATUS_DONE`)
  by its file: upb's pool knows neither symbol, and `grpcurl describe` asks for both.
- `json_name` is cleared from the served fields. protoc records it in the descriptor set but
  not in the generated code, and grpcurl prints JSON with it when present: serving it would
  turn grpcurl's output from the field names (as before, and as docs/grpcurl.md shows) into
  lowerCamelCase. Requests accept both spellings either way.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

DESCRIPTOR_SET = "workengine_descriptor_set.binpb"


def load_descriptor_set() -> dict[str, bytes]:
    """The serialized FileDescriptorProtos of the generated descriptor set, by file name."""
    data = (resources.files("workengine.v1") / DESCRIPTOR_SET).read_bytes()
    files = descriptor_pb2.FileDescriptorSet.FromString(data).file
    for file in files:
        for message in file.message_type:
            _clear_json_names(message)
    return {file.name: file.SerializeToString() for file in files}


def _clear_json_names(message: descriptor_pb2.DescriptorProto) -> None:
    for field in message.field:
        field.ClearField("json_name")
    for nested in message.nested_type:
        _clear_json_names(nested)


def enum_value_files(files: dict[str, bytes]) -> dict[str, str]:
    """File name by enum value symbol, under both names in use: beside its enum (`pkg.VALUE`, as
    protoc scopes it) and inside it (`pkg.Enum.VALUE`, as grpcurl's descriptor library does)."""
    found: dict[str, str] = {}

    def add(scope: str, enums: Any, messages: Any, file_name: str) -> None:
        for enum in enums:
            for value in enum.value:
                found[f"{scope}.{value.name}"] = file_name
                found[f"{scope}.{enum.name}.{value.name}"] = file_name
        for message in messages:
            add(f"{scope}.{message.name}", message.enum_type, message.nested_type, file_name)

    for name, serialized in files.items():
        file = descriptor_pb2.FileDescriptorProto.FromString(serialized)
        add(file.package, file.enum_type, file.message_type, name)
    return found


class DocumentedReflectionServicer(reflection.aio.ReflectionServicer):  # type: ignore[misc]
    """grpcio's aio reflection servicer, answering with the commented file descriptors."""

    def __init__(self, service_names: tuple[str, ...], documented: dict[str, bytes] | None = None) -> None:
        super().__init__(service_names)
        self._documented = load_descriptor_set() if documented is None else documented
        self._enum_value_files = enum_value_files(self._documented)

    def _with_comments(self, response: Any) -> Any:
        if not response.HasField("file_descriptor_response"):
            return response
        files = response.file_descriptor_response.file_descriptor_proto
        for index, serialized in enumerate(files):
            name = descriptor_pb2.FileDescriptorProto.FromString(serialized).name
            files[index] = self._documented.get(name, serialized)
        return response

    def _file_by_filename(self, request: Any, filename: str) -> Any:
        return self._with_comments(super()._file_by_filename(request, filename))

    def _file_containing_symbol(self, request: Any, fully_qualified_name: str) -> Any:
        response = super()._file_containing_symbol(request, fully_qualified_name)
        if not response.HasField("error_response"):
            return self._with_comments(response)
        if fully_qualified_name in self._enum_value_files:  # upb's pool knows no enum values
            return self._file_by_filename(request, self._enum_value_files[fully_qualified_name])
        parent = fully_qualified_name.rpartition(".")[0]
        if parent:
            try:
                self._pool.FindServiceByName(parent)
            except KeyError:
                return response
            response = super()._file_containing_symbol(request, parent)
        return self._with_comments(response)

    def _file_containing_extension(self, request: Any, containing_type: str, extension_number: int) -> Any:
        return self._with_comments(
            super()._file_containing_extension(request, containing_type, extension_number)
        )


def add_reflection(service_names: tuple[str, ...], server: Any) -> None:
    """Serves reflection for `service_names` (plus reflection itself) on a grpc.aio server."""
    names = (*service_names, reflection.SERVICE_NAME)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(DocumentedReflectionServicer(names), server)
