"""`workengine healthcheck` against a real `workengine serve`, both given the same environment
as in a container: plaintext, TLS with a certificate that does not name 127.0.0.1, and TLS
with client certificates required. Exit 0 only when the server answers SERVING.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.serving import WORKENGINE, ServeProcess, clean_env
from tests.tools import system_tool
from workengine.cli.healthcheck import server_name, subject_alt_names

# A name only: the certificate does not name 127.0.0.1, where the health check connects.
SERVER_SANS = "DNS:workengine.internal,DNS:*.workengine.svc"


@dataclass(frozen=True)
class Pki:
    directory: Path

    def __getitem__(self, name: str) -> str:
        return str(self.directory / name)


def openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)


def new_ca(directory: Path, name: str) -> None:
    openssl(
        directory, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "1", "-subj", f"/CN={name}",
    )  # fmt: skip


def new_certificate(directory: Path, name: str, ca: str, extensions: str) -> None:
    openssl(
        directory, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
    )  # fmt: skip
    (directory / f"{name}.ext").write_text(extensions)
    openssl(
        directory, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext",
    )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    """A CA; a server certificate (usable as a client one too, as many internal CAs issue them)
    naming only DNS names; a client certificate; and one from a CA nobody trusts."""
    system_tool("openssl", "no certificates to test TLS with")
    directory = tmp_path_factory.mktemp("healthcheck-pki")
    new_ca(directory, "ca")
    new_ca(directory, "stranger-ca")
    both = "extendedKeyUsage=serverAuth,clientAuth\n"
    new_certificate(directory, "server", "ca", f"subjectAltName={SERVER_SANS}\n{both}")
    new_certificate(directory, "probe", "ca", "extendedKeyUsage=clientAuth\n")
    new_certificate(directory, "stranger", "stranger-ca", "extendedKeyUsage=clientAuth\n")
    new_certificate(
        directory, "many", "ca", "subjectAltName=" + ",".join(f"DNS:n{i}.example" for i in range(40))
        + ",IP:10.0.0.7,IP:fd00::1\n",
    )  # fmt: skip
    new_certificate(directory, "ip-only", "ca", "subjectAltName=IP:10.1.2.3\n")
    yield Pki(directory)


def healthcheck(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WORKENGINE, "healthcheck", *args], capture_output=True, text=True, timeout=60, env=clean_env(**env)
    )


def serve(database_url: str, **env: str) -> tuple[ServeProcess, str]:
    """A server with `env`; returns it and its port."""
    server = ServeProcess("--database-url", database_url, env=clean_env(**env))
    try:
        return server, server.wait_listening().rsplit(":", 1)[1]
    except BaseException:
        server.kill()
        raise


def assert_unhealthy(result: subprocess.CompletedProcess[str], *why: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("unhealthy: "), result.stderr
    assert all(text in lines[0] for text in why), lines[0]
    assert "Traceback" not in result.stderr


def test_plaintext_serving_then_stopped(empty_database_url: str) -> None:
    server, port = serve(empty_database_url)
    try:
        serving = healthcheck(WORKENGINE_PORT=port)
        assert serving.returncode == 0, serving.stderr
        assert serving.stdout == "" and serving.stderr == ""
    finally:
        assert server.terminate() == 0
    assert_unhealthy(healthcheck(WORKENGINE_PORT=port), f"127.0.0.1:{port}", "UNAVAILABLE")


def test_tls_with_a_certificate_that_does_not_name_the_loopback_address(
    empty_database_url: str, pki: Pki
) -> None:
    tls = {"WORKENGINE_TLS_CERT": pki["server.pem"], "WORKENGINE_TLS_KEY": pki["server.key"]}
    server, port = serve(empty_database_url, **tls)
    try:
        assert (result := healthcheck(WORKENGINE_PORT=port, **tls)).returncode == 0, result.stderr
        # The same with flags, as `serve` takes them.
        flags = ("--port", port, "--tls-cert", pki["server.pem"], "--tls-key", pki["server.key"])
        assert (result := healthcheck(*flags)).returncode == 0, result.stderr
        # The name is checked, not skipped: one the certificate does not hold fails.
        wrong = healthcheck(
            WORKENGINE_PORT=port, WORKENGINE_HEALTHCHECK_SERVER_NAME="elsewhere.example", **tls
        )
        assert_unhealthy(wrong, "UNAVAILABLE")
        # A plaintext health check (the image's before) cannot talk to a TLS server.
        assert_unhealthy(healthcheck(WORKENGINE_PORT=port), "UNAVAILABLE")
    finally:
        assert server.terminate() == 0
    assert_unhealthy(healthcheck(WORKENGINE_PORT=port, **tls), "UNAVAILABLE")


def test_tls_with_client_certificates_required(empty_database_url: str, pki: Pki) -> None:
    tls = {
        "WORKENGINE_TLS_CERT": pki["server.pem"],
        "WORKENGINE_TLS_KEY": pki["server.key"],
        "WORKENGINE_TLS_CLIENT_CA": pki["ca.pem"],
    }
    server, port = serve(empty_database_url, **tls)
    try:
        probe = {
            "WORKENGINE_HEALTHCHECK_CERT": pki["probe.pem"],
            "WORKENGINE_HEALTHCHECK_KEY": pki["probe.key"],
        }
        assert (result := healthcheck(WORKENGINE_PORT=port, **tls, **probe)).returncode == 0, result.stderr
        # Without a pair of its own it presents the server's, which this CA signed for clients too.
        assert (result := healthcheck(WORKENGINE_PORT=port, **tls)).returncode == 0, result.stderr
        stranger = {
            "WORKENGINE_HEALTHCHECK_CERT": pki["stranger.pem"],
            "WORKENGINE_HEALTHCHECK_KEY": pki["stranger.key"],
        }
        assert_unhealthy(healthcheck(WORKENGINE_PORT=port, **tls, **stranger), "UNAVAILABLE")
        half = healthcheck(WORKENGINE_PORT=port, WORKENGINE_HEALTHCHECK_CERT=pki["probe.pem"], **tls)
        assert_unhealthy(half, "WORKENGINE_HEALTHCHECK_CERT and WORKENGINE_HEALTHCHECK_KEY go together")
    finally:
        assert server.terminate() == 0


def test_a_setting_that_cannot_work_is_unhealthy_not_exit_2(tmp_path: Path) -> None:
    """Docker reserves exit status 2 in a health check."""
    assert_unhealthy(healthcheck(WORKENGINE_TLS_CERT=str(tmp_path / "absent.pem")), "cannot read --tls-cert")
    assert_unhealthy(healthcheck(WORKENGINE_PORT="many"), "WORKENGINE_PORT")


def test_the_names_of_a_certificate(pki: Pki) -> None:
    def names(name: str) -> tuple[list[str], list[str]]:
        der_text = subprocess.run(
            ["openssl", "x509", "-in", pki[f"{name}.pem"], "-outform", "DER"], capture_output=True, check=True
        ).stdout
        return subject_alt_names(der_text)

    assert names("server") == (["workengine.internal", "*.workengine.svc"], [])
    # 40 names: a SAN extension long enough for DER's multi-byte lengths.
    assert names("many") == ([f"n{i}.example" for i in range(40)], ["10.0.0.7", "fd00::1"])
    assert names("probe") == ([], [])
    assert server_name(Path(pki["server.pem"]).read_bytes()) == "workengine.internal"
    assert server_name(Path(pki["ip-only.pem"]).read_bytes()) == "10.1.2.3"
    assert server_name(Path(pki["probe.pem"]).read_bytes()) is None
    # A chain file: the first certificate is the server's.
    chain = Path(pki["server.pem"]).read_bytes() + Path(pki["many.pem"]).read_bytes()
    assert server_name(chain) == "workengine.internal"
