"""Settings from flags and WORKENGINE_* environment variables (flags win)."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import platformdirs

DEFAULT_PORT = 50051
DEFAULT_EVENT_RETENTION = "7d"
DEFAULT_POLL_INTERVAL = 0.1
DEFAULT_LEASE_DURATION = "5m"
DEFAULT_MAINTENANCE_INTERVAL = 1.0
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_STREAMS_PER_CLIENT = 100
MIN_ADMIN_TOKEN_LENGTH = 16
_SIZE = re.compile(r"^\s*(\d+)\s*(|b|kib|mib|gib|k|m|g)\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gib": 1024**3,
}


class ConfigError(ValueError):
    """A setting that cannot work; the message says which and why."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """'90' or '90s', '15m', '12h', '7d'."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 12h or 7d")
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])


def parse_size(text: str) -> int:
    """'8388608', '512KiB', '8MiB' (K/M/G are binary too)."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size like 4194304, 512KiB or 8MiB")
    return int(match[1]) * _SIZE_UNITS[match[2].lower()]


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach: localhost, 127.0.0.0/8, ::1."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def read_secret(value: str | None, file: str | None, what: str) -> str | None:
    """A secret given directly or as a file holding it (surrounding whitespace ignored)."""
    if value and file:
        raise ConfigError(f"give {what} or {what}-file, not both")
    if file:
        try:
            value = Path(file).read_text().strip()
        except OSError as error:
            raise ConfigError(f"cannot read {what}-file {file}: {error.strerror}") from None
        if not value:
            raise ConfigError(f"{what}-file {file} is empty")
    return value or None


def read_pem(path: str | None, what: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read {what} {path}: {error.strerror}") from None


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("workengine")) / "pgdata"


@dataclass(frozen=True)
class ServeSettings:
    host: str
    port: int
    database_url: str | None
    data_dir: Path
    migrate: bool
    pool_size: int
    grace_seconds: float
    # LISTEN for other processes' events; off for PgBouncer transaction pooling (then poll).
    listen: bool
    poll_interval: float
    event_retention: timedelta
    lease_duration: timedelta
    maintenance_interval: float
    # Security (README "Security"): authentication is on when an admin token is set.
    admin_token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    # Listen on a non-loopback address without authentication: only when asked explicitly.
    insecure: bool = False
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_streams_per_client: int = DEFAULT_MAX_STREAMS_PER_CLIENT

    def check(self) -> None:
        """Refuses settings that would be unsafe or cannot work, with a message saying why."""
        if self.admin_token is not None and len(self.admin_token) < MIN_ADMIN_TOKEN_LENGTH:
            raise ConfigError(
                f"the admin token is shorter than {MIN_ADMIN_TOKEN_LENGTH} characters; use a random "
                "one, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("--tls-cert and --tls-key go together")
        if self.tls_client_ca and not self.tls_cert:
            raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key")
        if self.max_message_bytes < 1024:
            raise ConfigError("--max-message-size must be at least 1KiB")
        if self.max_streams_per_client < 0:
            raise ConfigError("--max-streams-per-client must not be negative (0: unlimited)")
        authenticated = self.admin_token is not None or bool(self.tls_client_ca)
        if not authenticated and not self.insecure and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to listen on {self.host} without authentication: anyone who can reach "
                "it could read and change every task. Set an admin token (--admin-token-file or "
                "WORKENGINE_ADMIN_TOKEN), require client certificates (--tls-client-ca), listen on "
                "127.0.0.1, or pass --insecure (WORKENGINE_INSECURE=1) if the network is trusted"
            )

    @classmethod
    def from_sources(
        cls,
        *,
        host: str | None = None,
        port: int | None = None,
        database_url: str | None = None,
        data_dir: str | None = None,
        migrate: bool | None = None,
        listen: bool | None = None,
        poll_interval: float | None = None,
        event_retention: timedelta | None = None,
        lease_duration: timedelta | None = None,
        maintenance_interval: float | None = None,
        admin_token: str | None = None,
        admin_token_file: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_client_ca: str | None = None,
        insecure: bool | None = None,
        max_message_bytes: int | None = None,
        max_streams_per_client: int | None = None,
    ) -> ServeSettings:
        env = os.environ
        if not (admin_token or admin_token_file):
            admin_token = env.get("WORKENGINE_ADMIN_TOKEN") or None
            admin_token_file = env.get("WORKENGINE_ADMIN_TOKEN_FILE") or None
        return cls(
            host=host or env.get("WORKENGINE_HOST", "127.0.0.1"),
            port=port if port is not None else int(env.get("WORKENGINE_PORT", DEFAULT_PORT)),
            database_url=database_url or env.get("WORKENGINE_DATABASE_URL") or None,
            data_dir=Path(data_dir or env.get("WORKENGINE_DATA_DIR") or default_data_dir()),
            migrate=migrate if migrate is not None else env.get("WORKENGINE_MIGRATE", "1") != "0",
            pool_size=int(env.get("WORKENGINE_POOL_SIZE", "10")),
            grace_seconds=float(env.get("WORKENGINE_SHUTDOWN_GRACE", "5")),
            listen=listen if listen is not None else env.get("WORKENGINE_LISTEN", "1") != "0",
            poll_interval=poll_interval
            if poll_interval is not None
            else float(env.get("WORKENGINE_POLL_INTERVAL", DEFAULT_POLL_INTERVAL)),
            event_retention=event_retention
            or parse_duration(env.get("WORKENGINE_EVENT_RETENTION", DEFAULT_EVENT_RETENTION)),
            lease_duration=lease_duration
            or parse_duration(env.get("WORKENGINE_LEASE_DURATION", DEFAULT_LEASE_DURATION)),
            maintenance_interval=maintenance_interval
            if maintenance_interval is not None
            else float(env.get("WORKENGINE_MAINTENANCE_INTERVAL", DEFAULT_MAINTENANCE_INTERVAL)),
            admin_token=read_secret(admin_token, admin_token_file, "--admin-token"),
            tls_cert=tls_cert or env.get("WORKENGINE_TLS_CERT") or None,
            tls_key=tls_key or env.get("WORKENGINE_TLS_KEY") or None,
            tls_client_ca=tls_client_ca or env.get("WORKENGINE_TLS_CLIENT_CA") or None,
            insecure=insecure if insecure is not None else env.get("WORKENGINE_INSECURE", "0") == "1",
            max_message_bytes=max_message_bytes
            if max_message_bytes is not None
            else parse_size(env.get("WORKENGINE_MAX_MESSAGE_SIZE", str(DEFAULT_MAX_MESSAGE_BYTES))),
            max_streams_per_client=max_streams_per_client
            if max_streams_per_client is not None
            else int(env.get("WORKENGINE_MAX_STREAMS_PER_CLIENT", DEFAULT_MAX_STREAMS_PER_CLIENT)),
        )


def default_target() -> str:
    return os.environ.get("WORKENGINE_TARGET", f"localhost:{DEFAULT_PORT}")


def default_token() -> str | None:
    """The bearer token client commands send: WORKENGINE_TOKEN, if set."""
    return os.environ.get("WORKENGINE_TOKEN") or None
