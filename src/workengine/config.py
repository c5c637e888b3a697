"""Settings from flags and WORKENGINE_* environment variables (flags win)."""

from __future__ import annotations

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

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """'90' or '90s', '15m', '12h', '7d'."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 12h or 7d")
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])


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
    ) -> ServeSettings:
        env = os.environ
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
        )


def default_target() -> str:
    return os.environ.get("WORKENGINE_TARGET", f"localhost:{DEFAULT_PORT}")
