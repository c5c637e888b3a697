"""`workengine serve`: database (embedded unless a URL is given), migrations, server, signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workengine.addresses import is_loopback
from workengine.api.server import BindError, RunningServer, Security, TlsFiles, check_port_free, start_server
from workengine.config import ServeSettings, read_pem
from workengine.engine import WorkEngine
from workengine.engine.feed import FeedSettings
from workengine.engine.maintenance import MaintenanceSettings
from workengine.engine.observer import NO_OBSERVER
from workengine.logs import announce, configure, url_passwords
from workengine.store.database import Database
from workengine.store.embedded import EmbeddedPostgres, check_data_dir
from workengine.store.migrate import migrate
from workengine.telemetry.metrics import Metrics, QueueRefresher
from workengine.tracing import configure_tracing
from workengine.web.auth import Policy
from workengine.web.dashboard import Dashboard
from workengine.web.side_port import MetricsAccess, SidePort, SidePortBindError, build_app, start_side_port

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
    engine, metrics = build_engine(settings, database_url)
    tracing = configure_tracing()  # None unless OTEL_* variables ask for traces
    async with contextlib.AsyncExitStack() as cleanup:  # in reverse, whatever stops the server
        if tracing:
            cleanup.push_async_callback(asyncio.to_thread, tracing.shutdown)  # exports what is buffered
        cleanup.push_async_callback(engine.close)
        serving = await start_serving(
            settings, engine, metrics, tracing.instrument_server() if tracing else ()
        )
        cleanup.push_async_callback(serving.stop, settings.grace_seconds)
        announce(f"workengine listening on {settings.host}:{serving.grpc.port}")
        if serving.http is not None:
            url = serving.http.url
            announce(
                f"metrics: {url}/metrics (and /healthz, /readyz)" if metrics else f"health: {url}/healthz"
            )
            announce(f"dashboard: {url}/")
        if tracing:
            announce("tracing on: exporting spans as the OTEL_* environment variables say")
        if settings.admin_token is None:
            announce("authentication is off (no admin token configured)")
        await stop.wait()
        announce("shutting down")


def build_engine(settings: ServeSettings, database_url: str) -> tuple[WorkEngine, Metrics | None]:
    """The engine on its database, observed by the metrics unless they are off."""
    db = Database(database_url, pool_size=settings.pool_size)
    metrics = Metrics(db.pool) if settings.metrics else None
    engine = WorkEngine(
        db,
        feed_settings=FeedSettings(
            listen=settings.listen, poll_interval=settings.poll_interval, retention=settings.event_retention
        ),
        maintenance_settings=MaintenanceSettings(interval=settings.maintenance_interval),
        default_lease=settings.lease_duration,
        observer=metrics.work if metrics is not None else NO_OBSERVER,
    )
    return engine, metrics


@dataclass
class Serving:
    """What answers the outside world: the gRPC server, the HTTP side port (unless off), and the
    refresh of the queue gauges (when metrics are on)."""

    grpc: RunningServer
    http: SidePort | None
    refresher: QueueRefresher | None

    async def stop(self, grace: float) -> None:
        """Stops each part, even when stopping another one failed."""
        async with contextlib.AsyncExitStack() as parts:  # run in reverse: HTTP first, gRPC last
            parts.push_async_callback(self.grpc.stop, grace)
            if self.refresher is not None:
                parts.push_async_callback(self.refresher.close)
            if self.http is not None:
                parts.push_async_callback(self.http.stop)


async def start_serving(
    settings: ServeSettings, engine: WorkEngine, metrics: Metrics | None, interceptors: Sequence[Any] = ()
) -> Serving:
    """`interceptors`: tracing's, when on."""
    running = await start_server(
        engine,
        settings.host,
        settings.port,
        security(settings),
        metrics.rpc if metrics else None,
        interceptors,
    )
    side_port = None
    if settings.http_port:  # 0: off
        authenticating = settings.admin_token is not None or bool(settings.tls_client_ca)
        app = build_app(
            engine.operations,
            metrics,
            MetricsAccess(settings.metrics_token, authenticating),
            Dashboard(engine, dashboard_policy(settings), settings.max_streams_per_client),
        )
        try:
            side_port = await start_side_port(app, settings.host, settings.http_port)
        except BaseException:
            await running.stop(0)
            raise
    refresher = None
    if metrics is not None:
        refresher = QueueRefresher(engine.operations, metrics.queue, settings.metrics_refresh)
        refresher.start()
    return Serving(running, side_port, refresher)


def dashboard_policy(settings: ServeSettings) -> Policy:
    """Who may see and act on the dashboard (web/auth.py): decided by the same settings as gRPC's."""
    return Policy(
        admin_token=settings.admin_token,
        client_certificates=bool(settings.tls_client_ca),
        loopback_host=is_loopback(settings.host),
    )


def check_ports(settings: ServeSettings) -> None:
    check_port_free(settings.host, settings.port)
    if settings.http_port:
        check_port_free(settings.host, settings.http_port, " (HTTP)")


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
        max_connection_age=settings.max_connection_age.total_seconds() or None,  # 0: off
        max_connection_age_grace=settings.max_connection_age_grace.total_seconds(),
    )


def _only_upgrades(record: logging.LogRecord) -> bool:
    """Of Alembic's start-up lines, the migrations it runs; not its "Context impl ..." chatter."""
    return record.levelno > logging.INFO or record.getMessage().startswith("Running upgrade")


def secrets(settings: ServeSettings) -> list[str | None]:
    """What the logs mask wherever it occurs (docs/operations.md#logs)."""
    return [settings.admin_token, settings.metrics_token, *url_passwords(settings.database_url)]


def serve(settings: ServeSettings) -> None:
    configure(settings.log_format, secrets(settings))
    logging.getLogger("alembic.runtime.migration").addFilter(_only_upgrades)
    settings.check()
    security(settings)  # unreadable certificate files fail here, before any database starts
    try:
        check_ports(settings)  # taken ports too, before a migration or an embedded database
        if settings.database_url:
            asyncio.run(run(settings, settings.database_url))
            return
        embedded = start_embedded(settings)
        try:
            asyncio.run(run(settings, embedded.ensure_database()))
        finally:
            embedded.stop()  # here, not at exit: see EmbeddedPostgres.stop
    except (BindError, SidePortBindError) as error:
        print(f"workengine serve: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
