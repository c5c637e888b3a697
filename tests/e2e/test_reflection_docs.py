"""Reflection serves the protos' comments, so a stranger's `grpcurl describe` shows the contract."""

from __future__ import annotations

from tests.e2e.grpcurl import SERVICE, grpcurl


async def test_describe_an_rpc_shows_its_proto_comment(target: str) -> None:
    result = await grpcurl(target, "describe", f"{SERVICE}.ClaimNextTask")

    assert result.returncode == 0, result.stderr
    assert "// Atomically selects the best ready task and starts it (TODO -> IN_PROGRESS)." in result.stdout
    assert "rpc ClaimNextTask ( .workengine.v1.ClaimNextTaskRequest )" in result.stdout


async def test_describe_a_message_shows_field_comments(target: str) -> None:
    result = await grpcurl(target, "describe", "workengine.v1.UpdateTaskProgressRequest")

    assert result.returncode == 0, result.stderr
    assert "Percent complete, 0-100 inclusive" in result.stdout


async def test_describe_an_enum_from_another_file_shows_value_comments(target: str) -> None:
    result = await grpcurl(target, "describe", "workengine.v1.TaskStatus")

    assert result.returncode == 0, result.stderr
    assert "TASK_STATUS_DONE = 4;" in result.stdout
    assert "Terminal." in result.stdout


async def test_health_and_well_known_types_still_resolve(target: str) -> None:
    health = await grpcurl(target, "describe", "grpc.health.v1.Health")
    duration = await grpcurl(target, "describe", "google.protobuf.Duration")

    assert health.returncode == 0, health.stderr
    assert "rpc Check" in health.stdout
    assert duration.returncode == 0, duration.stderr
    assert "int64 seconds = 1;" in duration.stdout
