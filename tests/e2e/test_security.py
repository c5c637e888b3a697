"""`workengine serve` as deployed: the loopback rule, an admin token from the environment, the
CLI's --token, and TLS with and without client certificates (certificates made here by openssl).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.serving import WORKENGINE, ServeProcess, clean_env
from tests.tools import system_tool
from workengine.api.server import RunningServer, Security, TlsFiles, start_server
from workengine.engine import WorkEngine
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef"


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WORKENGINE, *args], capture_output=True, text=True, timeout=60, check=False, env=clean_env(**env)
    )


# The loopback rule


def test_serve_refuses_a_non_loopback_address_without_authentication(empty_database_url: str) -> None:
    for host in ("0.0.0.0", "::"):
        result = run_cli("serve", "--host", host, "--port", "0", "--database-url", empty_database_url)
        assert result.returncode == 2
        assert f"refusing to listen on {host} without authentication" in result.stderr
        assert "--insecure" in result.stderr and "WORKENGINE_ADMIN_TOKEN" in result.stderr
        assert "Traceback" not in result.stderr
    result = run_cli("serve", "--port", "0", "--database-url", empty_database_url, WORKENGINE_HOST="0.0.0.0")
    assert result.returncode == 2 and "refusing to listen on 0.0.0.0" in result.stderr


def test_serve_listens_everywhere_with_insecure_and_says_authentication_is_off(
    empty_database_url: str,
) -> None:
    server = ServeProcess(
        "--host", "0.0.0.0", "--insecure", "--database-url", empty_database_url, env=clean_env()
    )
    try:
        _, port = server.wait_listening().rsplit(":", 1)
        assert _wait_line(server, "authentication is off")
        result = run_cli("orchestrator", "list", "--target", f"127.0.0.1:{port}")
        assert result.returncode == 0, result.stderr
    finally:
        server.kill()


def _wait_line(server: ServeProcess, text: str) -> bool:
    for _ in range(50):
        if any(text in line for line in server.lines):
            return True
        time.sleep(0.1)
    return False


def test_serve_refuses_a_short_admin_token(empty_database_url: str) -> None:
    result = run_cli(
        "serve", "--port", "0", "--database-url", empty_database_url, WORKENGINE_ADMIN_TOKEN="short"
    )
    assert result.returncode == 2 and "shorter than 16 characters" in result.stderr


def test_authenticated_serve_on_all_interfaces_and_the_cli_token(
    empty_database_url: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    server = ServeProcess(
        "--host",
        "0.0.0.0",
        "--admin-token-file",
        str(token_file),
        "--database-url",
        empty_database_url,
        env=clean_env(),
    )
    try:
        _, port = server.wait_listening().rsplit(":", 1)
        target = f"127.0.0.1:{port}"
        anonymous = run_cli("orchestrator", "list", "--target", target)
        assert anonymous.returncode == 1 and "UNAUTHENTICATED" in anonymous.stderr
        register = run_cli(
            "orchestrator",
            "register",
            "--name",
            "Ada",
            "--id",
            "ada",
            "--target",
            target,
            WORKENGINE_TOKEN=ADMIN_TOKEN,
        )
        assert register.returncode == 0, register.stderr
        ada_token = register.stderr.rsplit(": ", 1)[1].strip()
        assert ada_token.startswith("wet_")
        run_cli(
            "orchestrator",
            "register",
            "--name",
            "Bob",
            "--id",
            "bob",
            "--target",
            target,
            WORKENGINE_TOKEN=ADMIN_TOKEN,
        )
        own = run_cli(
            "task",
            "create",
            "--orchestrator",
            "ada",
            "--workspace",
            "ws",
            "--title",
            "mine",
            "--target",
            target,
            "--token",
            ada_token,
        )
        assert own.returncode == 0, own.stderr
        other = run_cli(
            "task",
            "create",
            "--orchestrator",
            "bob",
            "--workspace",
            "ws",
            "--title",
            "not mine",
            "--target",
            target,
            "--token",
            ada_token,
        )
        assert other.returncode == 1 and "PERMISSION_DENIED" in other.stderr
        rotated = run_cli(
            "orchestrator", "rotate-token", "--id", "ada", "--target", target, "--token", ada_token
        )
        assert rotated.returncode == 0 and "token (shown once): wet_" in rotated.stdout
        stale = run_cli("task", "list", "--target", target, "--token", ada_token)
        assert stale.returncode == 1 and "token revoked" in stale.stderr
    finally:
        server.kill()


# TLS


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def read(self, path: Path) -> bytes:
        return path.read_bytes()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _signed(directory: Path, name: str, extensions: str) -> None:
    _openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        f"/CN={name}",
        cwd=directory,
    )
    (directory / f"{name}.ext").write_text(extensions)
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        f"{name}.pem",
        "-days",
        "1",
        "-extfile",
        f"{name}.ext",
        cwd=directory,
    )


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Certificates]:
    system_tool("openssl", "no certificates to test TLS with")
    directory = tmp_path_factory.mktemp("certs")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=workengine-test-ca",
        cwd=directory,
    )
    _signed(directory, "server", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _signed(directory, "client", "extendedKeyUsage=clientAuth\n")
    yield Certificates(
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server.key",
        directory / "client.pem",
        directory / "client.key",
    )


def _health(channel: grpc.Channel) -> int:
    response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return int(response.status)


@pytest.fixture
async def tls_server(engine: WorkEngine, certificates: Certificates) -> AsyncIterator[RunningServer]:
    tls = TlsFiles(certificates.read(certificates.server_cert), certificates.read(certificates.server_key))
    running = await start_server(engine, "127.0.0.1", 0, Security(tls=tls))
    yield running
    await running.stop(0)


async def test_tls_serves_clients_that_trust_the_ca_and_refuses_plaintext(
    tls_server: RunningServer, certificates: Certificates
) -> None:
    target = f"localhost:{tls_server.port}"
    credentials = grpc.ssl_channel_credentials(root_certificates=certificates.read(certificates.ca))
    async with grpc.aio.secure_channel(target, credentials) as channel:
        stub = pb_grpc.WorkEngineServiceStub(channel)
        registered = await stub.RegisterOrchestrator(pb.RegisterOrchestratorRequest(display_name="Ada"))
        assert registered.orchestrator.id
    async with grpc.aio.insecure_channel(target) as plaintext:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await pb_grpc.WorkEngineServiceStub(plaintext).ListOrchestrators(
                pb.ListOrchestratorsRequest(), timeout=5
            )
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    untrusting = grpc.ssl_channel_credentials()  # system CAs: the test CA is not among them
    async with grpc.aio.secure_channel(target, untrusting) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await pb_grpc.WorkEngineServiceStub(channel).ListOrchestrators(
                pb.ListOrchestratorsRequest(), timeout=5
            )
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_serve_with_client_certificates_refuses_clients_without_one(
    empty_database_url: str, certificates: Certificates
) -> None:
    server = ServeProcess(
        "--database-url",
        empty_database_url,
        "--tls-cert",
        str(certificates.server_cert),
        "--tls-key",
        str(certificates.server_key),
        "--tls-client-ca",
        str(certificates.ca),
        env=clean_env(),
    )
    try:
        _, port = server.wait_listening().rsplit(":", 1)
        target = f"localhost:{port}"
        ca = certificates.read(certificates.ca)
        with_cert = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=certificates.read(certificates.client_key),
            certificate_chain=certificates.read(certificates.client_cert),
        )
        with grpc.secure_channel(target, with_cert) as channel:
            assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
        with grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=ca)) as channel:
            with pytest.raises(grpc.RpcError) as caught:
                _health(channel)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError):
            _health(channel)
        # The CLI's TLS options.
        listed = run_cli(
            "orchestrator",
            "list",
            "--target",
            target,
            "--tls-ca",
            str(certificates.ca),
            "--tls-client-cert",
            str(certificates.client_cert),
            "--tls-client-key",
            str(certificates.client_key),
        )
        assert listed.returncode == 0, listed.stderr
        refused = run_cli("orchestrator", "list", "--target", target, "--tls-ca", str(certificates.ca))
        assert refused.returncode == 1 and "UNAVAILABLE" in refused.stderr
    finally:
        server.kill()


def test_a_client_ca_without_a_server_certificate_is_refused(
    empty_database_url: str, certificates: Certificates
) -> None:
    result = run_cli(
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--database-url",
        empty_database_url,
        "--tls-client-ca",
        str(certificates.ca),
    )
    assert result.returncode == 2 and "--tls-client-ca needs --tls-cert" in result.stderr
