"""Serve settings that decide exposure: the loopback rule, secrets from files, sizes."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from workengine.addresses import is_loopback
from workengine.config import ConfigError, ServeSettings, read_secret
from workengine.values import parse_size

BASE = ServeSettings(
    host="127.0.0.1",
    port=0,
    database_url="postgresql://x",
    data_dir=Path("/tmp/x"),
    migrate=True,
    pool_size=1,
    grace_seconds=1,
    listen=True,
    poll_interval=0.1,
    event_retention=timedelta(days=7),
    lease_duration=timedelta(minutes=5),
    maintenance_interval=1.0,
)
TOKEN = "an-admin-token-long-enough"


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "10.0.0.7", "example.com", "192.168.1.1", "::ffff:10.0.0.7"]
)
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_without_authentication_only_loopback_is_allowed_unless_insecure() -> None:
    BASE.check()
    exposed = dataclasses.replace(BASE, host="0.0.0.0")
    refusal = r"refusing to listen on 0\.0\.0\.0 without authentication.*--insecure"
    with pytest.raises(ConfigError, match=refusal):
        exposed.check()
    dataclasses.replace(exposed, insecure=True).check()
    dataclasses.replace(exposed, admin_token=TOKEN).check()
    dataclasses.replace(exposed, tls_cert="c", tls_key="k", tls_client_ca="ca").check()


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"admin_token": "short"}, "shorter than 16"),
        ({"tls_cert": "c"}, "go together"),
        ({"tls_key": "k"}, "go together"),
        ({"tls_client_ca": "ca"}, "needs --tls-cert"),
        ({"max_message_bytes": 10}, "--max-message-size"),
        ({"max_streams_per_client": -1}, "--max-streams-per-client"),
    ],
)
def test_settings_that_cannot_work_are_refused(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        dataclasses.replace(BASE, **changes).check()  # type: ignore[arg-type]


def test_the_admin_token_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "admin-token"
    secret.write_text(f"  {TOKEN}\n")
    assert read_secret(None, str(secret), "--admin-token") == TOKEN
    assert read_secret(TOKEN, None, "--admin-token") == TOKEN
    assert read_secret(None, None, "--admin-token") is None
    with pytest.raises(ConfigError, match="not both"):
        read_secret(TOKEN, str(secret), "--admin-token")
    with pytest.raises(ConfigError, match="cannot read"):
        read_secret(None, str(tmp_path / "missing"), "--admin-token")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        read_secret(None, str(tmp_path / "empty"), "--admin-token")


@pytest.mark.parametrize(
    ("text", "size"), [("1024", 1024), ("512KiB", 512 * 1024), ("8MiB", 8 << 20), ("1g", 1 << 30)]
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_a_bad_size_is_refused() -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size("eight megabytes")


def test_a_short_metrics_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="metrics token is shorter than 16"):
        dataclasses.replace(BASE, metrics_token="short").check()
    dataclasses.replace(BASE, metrics_token=TOKEN).check()
