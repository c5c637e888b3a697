"""Every service, RPC, message, field, oneof, enum and enum value of workengine.v1 carries a
comment, and the descriptor set reflection serves still holds them (source info)."""

from __future__ import annotations

from google.protobuf import descriptor_pb2

from workengine.api.reflection import load_descriptor_set

# Field numbers of the paths in SourceCodeInfo (descriptor.proto).
MESSAGE_TYPE, ENUM_TYPE, SERVICE = 4, 5, 6
FIELD, NESTED_TYPE, ONEOF = 2, 3, 8
ENUM_VALUE, METHOD = 2, 2


def _undocumented(file: descriptor_pb2.FileDescriptorProto) -> list[str]:
    comments = {
        tuple(location.path): (location.leading_comments + location.trailing_comments).strip()
        for location in file.source_code_info.location
    }
    missing: list[str] = []

    def need(path: list[int], name: str) -> None:
        if not comments.get(tuple(path)):
            missing.append(name)

    def message(proto: descriptor_pb2.DescriptorProto, path: list[int], name: str) -> None:
        need(path, name)
        for i, field in enumerate(proto.field):
            need([*path, FIELD, i], f"{name}.{field.name}")
        # The oneof protoc makes for each `optional` field (proto3 presence) has no source.
        synthetic = {f.oneof_index for f in proto.field if f.proto3_optional}
        for i, oneof in enumerate(proto.oneof_decl):
            if i not in synthetic:
                need([*path, ONEOF, i], f"{name}.{oneof.name}")
        for i, nested in enumerate(proto.nested_type):
            message(nested, [*path, NESTED_TYPE, i], f"{name}.{nested.name}")

    for i, proto in enumerate(file.message_type):
        message(proto, [MESSAGE_TYPE, i], proto.name)
    for i, enum in enumerate(file.enum_type):
        need([ENUM_TYPE, i], enum.name)
        for j, value in enumerate(enum.value):
            need([ENUM_TYPE, i, ENUM_VALUE, j], value.name)
    for i, service in enumerate(file.service):
        need([SERVICE, i], service.name)
        for j, method in enumerate(service.method):
            need([SERVICE, i, METHOD, j], f"{service.name}.{method.name}")
    return missing


def test_every_element_of_the_workengine_protos_is_commented() -> None:
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(serialized)
        for name, serialized in load_descriptor_set().items()
        if name.startswith("workengine/")
    ]

    assert sorted(file.name for file in files) == [
        "workengine/v1/orchestrator.proto",
        "workengine/v1/task.proto",
        "workengine/v1/work_engine_service.proto",
    ]
    assert {file.name: _undocumented(file) for file in files} == {file.name: [] for file in files}


def test_every_rpc_comment_names_the_errors_it_returns() -> None:
    service_file = descriptor_pb2.FileDescriptorProto.FromString(
        load_descriptor_set()["workengine/v1/work_engine_service.proto"]
    )
    comments = {tuple(loc.path): loc.leading_comments for loc in service_file.source_code_info.location}
    codes = ("NOT_FOUND", "FAILED_PRECONDITION", "ALREADY_EXISTS", "INVALID_ARGUMENT", "OUT_OF_RANGE")

    silent = [
        method.name
        for j, method in enumerate(service_file.service[0].method)
        if not any(code in comments[(SERVICE, 0, METHOD, j)] for code in codes)
    ]

    assert silent == []
