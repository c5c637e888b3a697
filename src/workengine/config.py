"""`workengine serve`'s settings: one table of (setting, flag, environment variable, parser,
default), read from flags first, then WORKENGINE_* variables, then the default. A default is
the value its owner defines (the feed's, the maintenance runner's, the server's…), never a
copy of it."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

import platformdirs

from workengine.addresses import is_loopback
from workengine.api.guard import DEFAULT_MAX_STREAMS_PER_CLIENT
from workengine.api.server import (
    DEFAULT_MAX_CONNECTION_AGE_GRACE,
    DEFAULT_PORT,
    DEFAULT_SHUTDOWN_GRACE,
    MAX_MESSAGE_BYTES,
)
from workengine.domain.attempts import DEFAULT_LEASE
from workengine.engine.feed import FeedSettings
from workengine.engine.maintenance import MaintenanceSettings
from workengine.logs import DEFAULT_LOG_FORMAT, parse_log_format
from workengine.store.database import DEFAULT_POOL_SIZE
from workengine.telemetry import DEFAULT_QUEUE_REFRESH
from workengine.values import (
    parse_count,
    parse_duration,
    parse_size,
    parse_switch,
    positive_duration,
    positive_seconds,
    seconds,
    show_duration,
    show_size,
)
from workengine.web import DEFAULT_HTTP_PORT

MIN_ADMIN_TOKEN_LENGTH = 16


class ConfigError(ValueError):
    """A setting that cannot work; the message says which and why."""


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("workengine")) / "pgdata"


@dataclass(frozen=True)
class Setting:
    """One setting: its ServeSettings field, its flag (None: environment only), its variable,
    how text becomes its value, and its default (a callable is called when needed). A flag with
    `flag_value` takes no argument and sets that value (`--no-migrate`)."""

    field: str
    flag: str | None
    env: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    flag_value: Any = None
    show: Callable[[Any], str] = str

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default


# fmt: off
SETTINGS: tuple[Setting, ...] = (
    Setting("host", "--host", "WORKENGINE_HOST", str, "127.0.0.1", "address to listen on"),
    Setting("port", "--port", "WORKENGINE_PORT", parse_count, DEFAULT_PORT, "port to listen on"),
    Setting(
        "http_port", "--http-port", "WORKENGINE_HTTP_PORT", parse_count, DEFAULT_HTTP_PORT,
        "HTTP port for /metrics, /healthz and /readyz, on the same host; 0 turns it off",
    ),
    Setting(
        "metrics", None, "WORKENGINE_METRICS", parse_switch, True,
        "1: count RPCs and work for /metrics; 0: count nothing",
    ),
    Setting(
        "metrics_refresh", None, "WORKENGINE_METRICS_REFRESH", positive_seconds, DEFAULT_QUEUE_REFRESH,
        "seconds between reads of the queue gauges (tasks by status, oldest ready) from the database",
    ),
    Setting(
        "database_url", "--database-url", "WORKENGINE_DATABASE_URL", str, None,
        "PostgreSQL URL; without one, an embedded PostgreSQL in --data-dir",
    ),
    Setting(
        "data_dir", "--data-dir", "WORKENGINE_DATA_DIR", Path, default_data_dir,
        "the embedded PostgreSQL's data directory", show=lambda _: "the user data directory",
    ),
    Setting(
        "migrate", "--no-migrate", "WORKENGINE_MIGRATE", parse_switch, True,
        "do not apply migrations on start", flag_value=False,
    ),
    Setting(
        "pool_size", None, "WORKENGINE_POOL_SIZE", parse_count, DEFAULT_POOL_SIZE,
        "database connections kept (as many more may open under load)",
    ),
    Setting(
        "grace_seconds", None, "WORKENGINE_SHUTDOWN_GRACE", seconds, DEFAULT_SHUTDOWN_GRACE,
        "seconds calls in flight get to finish on SIGTERM",
    ),
    Setting(
        "listen", "--no-listen", "WORKENGINE_LISTEN", parse_switch, FeedSettings.listen,
        "poll the event table instead of LISTEN/NOTIFY, e.g. behind PgBouncer transaction pooling",
        flag_value=False,
    ),
    Setting(
        "poll_interval", "--poll-interval", "WORKENGINE_POLL_INTERVAL", positive_seconds,
        FeedSettings.poll_interval, "seconds between event-table polls with --no-listen",
    ),
    Setting(
        "event_retention", "--event-retention", "WORKENGINE_EVENT_RETENTION", positive_duration,
        FeedSettings.retention, "how long events stay resumable, e.g. 12h or 7d", show=show_duration,
    ),
    Setting(
        "lease_duration", "--lease-duration", "WORKENGINE_LEASE_DURATION", positive_duration, DEFAULT_LEASE,
        "lease a started task holds unless the task or the start asks for another", show=show_duration,
    ),
    Setting(
        "maintenance_interval", "--maintenance-interval", "WORKENGINE_MAINTENANCE_INTERVAL",
        positive_seconds, MaintenanceSettings.interval,
        "seconds between looks for expired leases and due retries",
    ),
    Setting("log_format", "--log-format", "WORKENGINE_LOG_FORMAT", parse_log_format, DEFAULT_LOG_FORMAT,
            "log lines as text or json (one object per line, for a log collector)"),
    Setting(
        "admin_token", "--admin-token", "WORKENGINE_ADMIN_TOKEN", str, None,
        "the admin token; turns authentication on (prefer the variable or --admin-token-file: a "
        "command line shows in `ps`)",
    ),
    Setting("admin_token_file", "--admin-token-file", "WORKENGINE_ADMIN_TOKEN_FILE", str, None,
            "file holding the admin token"),
    Setting(
        "metrics_token", "--metrics-token", "WORKENGINE_METRICS_TOKEN", str, None,
        "a token /metrics requires (Authorization: Bearer); without one, /metrics answers only "
        "loopback clients while authentication is on",
    ),
    Setting("metrics_token_file", "--metrics-token-file", "WORKENGINE_METRICS_TOKEN_FILE", str, None,
            "file holding the metrics token"),
    Setting("tls_cert", "--tls-cert", "WORKENGINE_TLS_CERT", str, None, "server certificate chain, PEM"),
    Setting("tls_key", "--tls-key", "WORKENGINE_TLS_KEY", str, None, "server private key, PEM"),
    Setting(
        "tls_client_ca", "--tls-client-ca", "WORKENGINE_TLS_CLIENT_CA", str, None,
        "require client certificates signed by this CA, PEM",
    ),
    Setting(
        "insecure", "--insecure", "WORKENGINE_INSECURE", parse_switch, False,
        "allow a non-loopback --host without authentication", flag_value=True,
    ),
    Setting(
        "max_message_bytes", "--max-message-size", "WORKENGINE_MAX_MESSAGE_SIZE", parse_size,
        MAX_MESSAGE_BYTES, "largest request accepted, e.g. 4MiB", show=show_size,
    ),
    Setting(
        "max_streams_per_client", "--max-streams-per-client", "WORKENGINE_MAX_STREAMS_PER_CLIENT",
        parse_count, DEFAULT_MAX_STREAMS_PER_CLIENT,
        "concurrent WatchTaskProgress streams per token (or per client address without "
        "authentication); 0: unlimited",
    ),
    Setting(
        "max_connection_age", "--max-connection-age", "WORKENGINE_MAX_CONNECTION_AGE", parse_duration,
        timedelta(0), "ask clients to reconnect after this long (e.g. 5m), so channels spread over "
        "replicas behind a per-connection balancer; 0: never", show=show_duration,
    ),
    Setting(
        "max_connection_age_grace", "--max-connection-age-grace", "WORKENGINE_MAX_CONNECTION_AGE_GRACE",
        parse_duration, timedelta(seconds=DEFAULT_MAX_CONNECTION_AGE_GRACE),
        "how long calls on a connection past its maximum age get before it is closed", show=show_duration,
    ),
)
# fmt: on


def _argument_type(setting: Setting) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return setting.parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = setting.field
    return parse


def add_arguments(parser: argparse.ArgumentParser, only: Iterable[str] | None = None) -> None:
    """The settings' flags (all, or those of the `only` fields), each with its help, variable
    and default."""
    wanted = set(only) if only is not None else None
    for setting in SETTINGS:
        if setting.flag is None or (wanted is not None and setting.field not in wanted):
            continue
        if setting.flag_value is not None:
            help_text = f"{setting.help} (env {setting.env})"
            parser.add_argument(
                setting.flag,
                dest=setting.field,
                action="store_const",
                const=setting.flag_value,
                help=help_text,
            )
            continue
        shown = f"default {setting.show(setting.default)}, " if setting.default is not None else ""
        parser.add_argument(
            setting.flag,
            dest=setting.field,
            type=_argument_type(setting),
            metavar=setting.flag.removeprefix("--").replace("-", "_").upper(),
            help=f"{setting.help} ({shown}env {setting.env})",
        )


def resolve(setting: Setting, flags: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    """The flag's value, else the variable's, else the default; an empty one counts as unset."""
    if flags.get(setting.field) not in (None, ""):
        return flags[setting.field]
    text = env.get(setting.env, "")
    if text:
        try:
            return setting.parse(text)
        except ValueError as error:
            raise ConfigError(f"{setting.env}: {error}") from None
    return setting.default_value()


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
    # Authentication is on when an admin token is set (docs/security.md).
    admin_token: str | None = None
    # /metrics requires it when set.
    metrics_token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    # Listen on a non-loopback address without authentication: only when asked explicitly.
    insecure: bool = False
    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_streams_per_client: int = DEFAULT_MAX_STREAMS_PER_CLIENT
    log_format: str = DEFAULT_LOG_FORMAT
    # The HTTP side port (0: off), and whether metrics are counted for it.
    http_port: int = DEFAULT_HTTP_PORT
    metrics: bool = True
    metrics_refresh: float = DEFAULT_QUEUE_REFRESH
    # 0: connections live as long as clients keep them (gRPC's default).
    max_connection_age: timedelta = timedelta(0)
    max_connection_age_grace: timedelta = timedelta(seconds=DEFAULT_MAX_CONNECTION_AGE_GRACE)

    @classmethod
    def from_sources(
        cls,
        flags: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        only: Iterable[str] | None = None,
    ) -> ServeSettings:
        """From `flags` (setting -> value, None when not given), then `env` (os.environ by
        default), then the defaults; with `only`, the other settings keep their defaults
        (`migrate` needs the database's location, and no bad variable of `serve` stops it)."""
        flags, env = flags or {}, os.environ if env is None else env
        wanted = set(only) if only is not None else None
        values = {
            setting.field: resolve(setting, flags, env)
            if wanted is None or setting.field in wanted
            else setting.default_value()
            for setting in SETTINGS
        }
        for secret in ("admin_token", "metrics_token"):
            if flags.get(secret) or flags.get(f"{secret}_file"):  # flags win as a pair
                values[secret], values[f"{secret}_file"] = flags.get(secret), flags.get(f"{secret}_file")
            token_file = values.pop(f"{secret}_file")
            values[secret] = read_secret(values[secret], token_file, "--" + secret.replace("_", "-"))
        known = {field.name for field in fields(cls)}
        return cls(**{name: value for name, value in values.items() if name in known})

    def check(self) -> None:
        """Refuses settings that would be unsafe or cannot work, with a message saying why."""
        if self.admin_token is not None and len(self.admin_token) < MIN_ADMIN_TOKEN_LENGTH:
            raise ConfigError(
                f"the admin token is shorter than {MIN_ADMIN_TOKEN_LENGTH} characters; use a random "
                "one, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        if self.metrics_token is not None and len(self.metrics_token) < MIN_ADMIN_TOKEN_LENGTH:
            raise ConfigError(
                f"the metrics token is shorter than {MIN_ADMIN_TOKEN_LENGTH} characters; use a random one"
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("--tls-cert and --tls-key go together")
        if self.tls_client_ca and not self.tls_cert:
            raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key")
        if not 0 <= self.http_port <= 65535:
            raise ConfigError("--http-port must be between 0 (off) and 65535")
        if self.http_port and self.http_port == self.port:
            raise ConfigError(f"--http-port and --port are both {self.port}; give them different ports")
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


def default_target() -> str:
    return os.environ.get("WORKENGINE_TARGET", f"localhost:{DEFAULT_PORT}")


def default_token() -> str | None:
    """The bearer token client commands send: WORKENGINE_TOKEN, if set."""
    return os.environ.get("WORKENGINE_TOKEN") or None
