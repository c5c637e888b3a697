"""`workengine serve` as a new user first runs it: a clean start and stop print only the
service's own lines (no platformdirs warning when XDG_RUNTIME_DIR is unset, no gRPC C-core log
lines), and a data directory it cannot use is refused in one line."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import grpc
import pytest

from tests.e2e.serving import WORKENGINE, ServeProcess, clean_env
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

# What serve prints itself, and records of its logging configuration (level INFO: nothing went
# wrong). Anything else (a Python warning, gRPC core's "I1207 12:00:00.000 fork_posix.cc:71]
# ...", a traceback) is noise a user should not see.
OWN_LINES = re.compile(
    r"starting embedded PostgreSQL in \S+"
    r"|workengine listening on \S+"
    r"|authentication is off \(no admin token configured\)"
    r"|shutting down"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO [\w.]+: .*"
)


def test_a_clean_start_and_stop_print_only_the_services_own_lines() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="workengine-first-")) / "pgdata"
    env = clean_env(WORKENGINE_DATA_DIR=str(data_dir))
    env.pop("XDG_RUNTIME_DIR", None)  # as under `sudo`, in a container, over some ssh sessions
    served = ServeProcess(env=env)
    try:
        target = served.wait_listening(timeout=120)
        # A call first (one answered with an error, as most first calls are): gRPC's threads
        # are still busy with it when the database stops.
        with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError) as missing:
            stub = pb_grpc.WorkEngineServiceStub(channel)
            stub.GetOrchestrator(pb.GetOrchestratorRequest(orchestrator_id="nobody"), timeout=30)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert served.terminate() == 0, "".join(served.lines)
    finally:
        served.kill()
        stopped = not (data_dir / "postmaster.pid").exists()
        shutil.rmtree(data_dir.parent, ignore_errors=True)

    noise = [
        line
        for line in served.lines
        if not OWN_LINES.fullmatch(line.rstrip("\n")) or ("alembic" in line and "Running upgrade" not in line)
    ]
    assert noise == [], "".join(served.lines)
    assert "shutting down\n" in served.lines
    assert stopped, "the embedded PostgreSQL is still running"


@pytest.mark.parametrize("kind", ["a directory of other files", "a file"])
def test_a_data_dir_that_cannot_hold_the_database_is_refused_in_one_line(kind: str, tmp_path: Path) -> None:
    if kind == "a file":
        data_dir = tmp_path / "notes.txt"
        data_dir.write_text("my notes\n")
        expected = f"error: data directory {data_dir} is a file, not a directory\n"
    else:
        data_dir = tmp_path / "projects"
        data_dir.mkdir()
        (data_dir / "notes.txt").write_text("my notes\n")
        expected = (
            f"error: data directory {data_dir} is not empty and holds no PostgreSQL database: "
            "give a new or empty directory, or the one WorkEngine created before\n"
        )

    result = subprocess.run(
        [WORKENGINE, "serve", "--port", "0", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, env=clean_env(), check=False,
    )  # fmt: skip

    assert (result.returncode, result.stdout, result.stderr) == (2, "", expected)
    assert sorted(path.name for path in tmp_path.iterdir()) == [data_dir.name]  # nothing written
    if kind != "a file":
        assert [path.name for path in data_dir.iterdir()] == ["notes.txt"]
