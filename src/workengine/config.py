"""Settings from flags and WORKENGINE_* environment variables (flags win)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

DEFAULT_PORT = 50051


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

    @classmethod
    def from_sources(
        cls,
        *,
        host: str | None = None,
        port: int | None = None,
        database_url: str | None = None,
        data_dir: str | None = None,
        migrate: bool | None = None,
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
        )


def default_target() -> str:
    return os.environ.get("WORKENGINE_TARGET", f"localhost:{DEFAULT_PORT}")
