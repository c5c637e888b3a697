"""`workengine serve`: database (embedded unless a URL is given), migrations, server, signals."""

from __future__ import annotations

import asyncio
import logging
import signal

from workengine.api.server import Security, TlsFiles, start_server
from workengine.config import ServeSettings, read_pem
from workengine.engine import WorkEngine
from workengine.engine.feed import FeedSettings
from workengine.engine.maintenance import MaintenanceSettings
from workengine.logs import announce, configure, url_passwords
from workengine.store.database import Database
from workengine.store.embedded import EmbeddedPostgres, check_data_dir
from workengine.store.migrate import migrate

log = logging.getLogger("workengine")


def start_embedded(settings: ServeSettings) -> EmbeddedPostgres:
    check_data_dir(settings.data_dir.expanduser())  # a directory it cannot use: said before starting
    announce(f"starting embedded PostgreSQL in {settings.data_dir}")
    return EmbeddedPostgres(settings.data_dir)


def resolve_database_url(settings: ServeSettings) -> str:
    """The database to use; an embedded one is started when no URL is given (and stopped at exit)."""
    if settings.database_url:
        return settings.database_url
    return start_embedded(settings).ensure_database()


async def run(settings: ServeSettings, database_url: str) -> None:
    # Handlers first: a supervisor may signal as soon as it reads the "listening" line.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if settings.migrate:
        await asyncio.to_thread(migrate, database_url)
    feed = FeedSettings(
        listen=settings.listen, poll_interval=settings.poll_interval, retention=settings.event_retention
    )
    engine = WorkEngine(
        Database(database_url, pool_size=settings.pool_size),
        feed_settings=feed,
        maintenance_settings=MaintenanceSettings(interval=settings.maintenance_interval),
        default_lease=settings.lease_duration,
    )
    running = await start_server(engine, settings.host, settings.port, security(settings))
    announce(f"workengine listening on {settings.host}:{running.port}")
    if settings.admin_token is None:
        announce("authentication is off (no admin token configured)")
    await stop.wait()
    announce("shutting down")
    await running.stop(settings.grace_seconds)
    await engine.close()


def security(settings: ServeSettings) -> Security:
    tls = None
    if settings.tls_cert and settings.tls_key:
        certificate = read_pem(settings.tls_cert, "--tls-cert")
        private_key = read_pem(settings.tls_key, "--tls-key")
        assert certificate is not None and private_key is not None
        tls = TlsFiles(certificate, private_key, read_pem(settings.tls_client_ca, "--tls-client-ca"))
    return Security(
        admin_token=settings.admin_token,
        tls=tls,
        max_message_bytes=settings.max_message_bytes,
        max_streams_per_client=settings.max_streams_per_client,
    )


def _only_upgrades(record: logging.LogRecord) -> bool:
    """Of Alembic's start-up lines, the migrations it runs; not its "Context impl ..." chatter."""
    return record.levelno > logging.INFO or record.getMessage().startswith("Running upgrade")


def secrets(settings: ServeSettings) -> list[str | None]:
    """What the logs mask wherever it occurs. (The metrics token is read by name: it is a setting
    of the HTTP port, which may or may not be there.)"""
    return [
        settings.admin_token,
        getattr(settings, "metrics_token", None),
        *url_passwords(settings.database_url),
    ]


def serve(settings: ServeSettings) -> None:
    configure(settings.log_format, secrets(settings))
    logging.getLogger("alembic.runtime.migration").addFilter(_only_upgrades)
    settings.check()
    security(settings)  # unreadable certificate files fail here, before any database starts
    if settings.database_url:
        asyncio.run(run(settings, settings.database_url))
        return
    embedded = start_embedded(settings)
    try:
        asyncio.run(run(settings, embedded.ensure_database()))
    finally:
        embedded.stop()  # here, not at exit: see EmbeddedPostgres.stop
