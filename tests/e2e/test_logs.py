"""`workengine serve`'s output as an operator collects it, in both log formats: no line holds a
secret it was given (admin token, orchestrator tokens, the database password, the TLS key),
over runs that log on many paths: refused, unknown, malformed and revoked tokens on unary and
streaming calls, a database that drops the server's connections, a password libpq quotes in
its errors, start-ups that fail, shutdown. In json every line parses, and the records of a call
name its method and peer."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.e2e.serving import WORKENGINE, ServeProcess, clean_env
from tests.integration.monitoring import free_port
from tests.tools import system_tool
from workengine.domain.access import new_token
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

FORMATS = ["text", "json"]
SERVICE = "/workengine.v1.WorkEngineService/"
Stub = pb_grpc.WorkEngineServiceStub


def with_password(url: str, password: str) -> str:
    """The test server trusts every login, so any password connects."""
    return make_url(url).set(password=password).render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and its private key."""
    openssl = system_tool("openssl", "no certificate to serve TLS with")
    directory = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "server.key", "-out", "server.pem", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        cwd=directory, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return directory / "server.pem", directory / "server.key"


def key_lines(key: Path) -> list[str]:
    return [line for line in key.read_text().splitlines() if line and not line.startswith("-----")]


def checked_output(lines: list[str], log_format: str, hidden: list[str]) -> list[dict[str, Any]]:
    """Asserts no line holds a secret and, in json, that every line is a record; the records."""
    output = "".join(lines)
    for secret in hidden:
        assert secret not in output, f"a secret ({secret[:4]}...) is in the output:\n{output}"
    if log_format == "text":
        return []
    parsed = [json.loads(line) for line in lines]
    for record in parsed:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
    return parsed


def wait_for(served: ServeProcess, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in served.lines):
        assert time.monotonic() < deadline, f"no {text!r} in:\n" + "".join(served.lines)
        time.sleep(0.1)


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def refused(call: Callable[[], Any], code: grpc.StatusCode) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == code, caught.value


def use_tokens(stub: Stub, admin: str) -> list[str]:
    """Calls refused for each reason a token is (the guard logs each); the tokens it used."""
    register = pb.RegisterOrchestratorRequest(orchestrator_id="ada", display_name="Ada")
    ada = stub.RegisterOrchestrator(register, metadata=bearer(admin))
    unknown = new_token()
    unauthenticated, denied = grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED
    get = stub.GetOrchestrator
    refused(lambda: get(pb.GetOrchestratorRequest(orchestrator_id="bob"), metadata=bearer(ada.token)), denied)
    refused(
        lambda: get(pb.GetOrchestratorRequest(orchestrator_id="ada"), metadata=bearer(unknown)),
        unauthenticated,
    )
    watch = pb.WatchTaskProgressRequest(task_id="t-1")
    refused(lambda: list(stub.WatchTaskProgress(watch, metadata=bearer(unknown))), unauthenticated)
    malformed = (("authorization", f"Basic {admin}"),)
    refused(
        lambda: stub.ListOrchestrators(pb.ListOrchestratorsRequest(), metadata=malformed), unauthenticated
    )
    stub.RevokeOrchestratorTokens(
        pb.RevokeOrchestratorTokensRequest(orchestrator_id="ada"), metadata=bearer(admin)
    )
    refused(
        lambda: get(pb.GetOrchestratorRequest(orchestrator_id="ada"), metadata=bearer(ada.token)),
        unauthenticated,
    )
    return [ada.token, unknown]


def drop_connections(database_url: str) -> None:
    """The database ends the server's sessions, as a failover or an administrator would."""
    database = make_url(database_url).database
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name LIKE 'workengine%%'",
            (database,),
        )


@dataclass
class SecretRun:
    served: ServeProcess
    log_format: str
    admin_token: str
    metrics: str  # the /metrics URL
    hidden: list[str]  # what no line may hold


@pytest.fixture
def secret_run(
    request: pytest.FixtureRequest, empty_database_url: str, tls_files: tuple[Path, Path]
) -> Iterator[SecretRun]:
    """serve with an admin token, a database password and TLS, in the format `request.param`."""
    admin, metrics_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    password, http_port = f"pw-{secrets.token_hex(12)}", free_port()
    certificate, key = tls_files
    served = ServeProcess(
        "--database-url", with_password(empty_database_url, password), "--log-format", request.param,
        "--tls-cert", str(certificate), "--tls-key", str(key), "--http-port", str(http_port),
        env=clean_env(WORKENGINE_ADMIN_TOKEN=admin, WORKENGINE_METRICS_TOKEN=metrics_token),
    )  # fmt: skip
    metrics = f"http://127.0.0.1:{http_port}/metrics"
    try:
        yield SecretRun(
            served, request.param, admin, metrics, [admin, metrics_token, password, *key_lines(key)]
        )
    finally:
        served.kill()


def scrape(run: SecretRun) -> None:
    """/metrics refused without the metrics token, served with it."""
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(run.metrics, timeout=10)
    assert refused.value.code == 401
    with_token = urllib.request.Request(run.metrics, headers={"Authorization": f"Bearer {run.hidden[1]}"})
    with urllib.request.urlopen(with_token, timeout=10) as response:
        assert response.status == 200


@pytest.mark.parametrize("secret_run", FORMATS, indirect=True)
def test_a_run_logs_no_secret_and_records_of_calls_name_their_method_and_peer(
    secret_run: SecretRun, empty_database_url: str, tls_files: tuple[Path, Path]
) -> None:
    served = secret_run.served
    port = served.wait_listening().rsplit(":", 1)[1]
    credentials = grpc.ssl_channel_credentials(root_certificates=tls_files[0].read_bytes())
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        secret_run.hidden += use_tokens(Stub(channel), secret_run.admin_token)
    scrape(secret_run)
    drop_connections(empty_database_url)
    wait_for(served, "event listener reconnected")
    assert served.terminate() == 0, "".join(served.lines)

    records = checked_output(served.lines, secret_run.log_format, secret_run.hidden)
    refusals = [line for line in served.lines if "call refused" in line]
    assert len(refusals) == 5, "".join(served.lines)
    assert any("event listener connection lost" in line for line in served.lines)
    if secret_run.log_format == "text":
        assert "shutting down\n" in served.lines
        for line in refusals:
            assert f"[method={SERVICE}" in line and " peer=ipv4:127.0.0.1:" in line, line
        return
    calls = [record for record in records if record["message"].startswith("call refused")]
    assert {record["method"].removeprefix(SERVICE) for record in calls} == {
        "GetOrchestrator", "WatchTaskProgress", "ListOrchestrators",
    }  # fmt: skip
    assert all(record["peer"].startswith("ipv4:127.0.0.1:") for record in calls)
    assert all("method" not in record for record in records if record not in calls)
    serve_lines = [record["message"] for record in records if record["logger"] == "workengine.serve"]
    assert serve_lines[0].startswith("workengine listening on 127.0.0.1:")
    dashboard = secret_run.metrics.removesuffix("metrics")
    assert serve_lines[1:] == [
        f"metrics: {secret_run.metrics} (and /healthz, /readyz)",
        f"dashboard: {dashboard}",
        "shutting down",
    ]


@pytest.mark.parametrize("log_format", FORMATS)
def test_a_password_libpq_quotes_in_its_errors_is_masked(log_format: str, empty_database_url: str) -> None:
    """Not valid percent-encoding: SQLAlchemy (migrations) takes the password as written, libpq
    refuses the URL quoting it, and the server's listener logs that error every few seconds."""
    password = f"%zz{secrets.token_hex(12)}"
    url = with_password(empty_database_url, "PLACEHOLDER").replace("PLACEHOLDER", password)
    served = ServeProcess("--database-url", url, "--log-format", log_format, env=clean_env())
    try:
        served.wait_listening()
        wait_for(served, "event listener connection lost")
        assert served.terminate() == 0, "".join(served.lines)
    finally:
        served.kill()
    records = checked_output(served.lines, log_format, [password, password[3:]])
    masked = 'invalid percent-encoded token: "***"'
    messages = [record["message"] for record in records] if log_format == "json" else served.lines
    assert any(masked in message for message in messages), "".join(served.lines)


@pytest.mark.parametrize("log_format", FORMATS)
@pytest.mark.parametrize(
    ("address", "status", "said"),
    [
        ("127.0.0.1:1", 2, "error: cannot reach the database: connection failed:"),
        ("127.0.0.1:notaport", 1, "stopped by an unexpected error"),
    ],
)
def test_a_failed_start_logs_no_password(log_format: str, address: str, status: int, said: str) -> None:
    password = f"pw-{secrets.token_hex(12)}"
    result = subprocess.run(
        [WORKENGINE, "serve", "--port", "0", "--log-format", log_format,
         "--database-url", f"postgresql://postgres:{password}@{address}/postgres"],
        capture_output=True, text=True, timeout=120, env=clean_env(), check=False,
    )  # fmt: skip
    assert result.returncode == status and said in result.stderr, result.stderr
    assert password not in result.stdout + result.stderr
    # serve's start-up error is plain text in either format (docs/operations.md#logs): the records
    # are what comes before it.
    logged, _, _ = result.stderr.partition("error: ")
    records = checked_output(logged.splitlines(keepends=True), log_format, [password])
    if log_format == "json" and status == 1:
        assert records[-1]["level"] == "CRITICAL" and records[-1]["exception"]["type"] == "ValueError"
