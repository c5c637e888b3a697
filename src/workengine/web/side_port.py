"""The HTTP side port (aiohttp, in the same asyncio loop as grpc.aio; no signal handling of its
own): /metrics in Prometheus' text format, /healthz (the process answers), /readyz (the
database answers and its schema is the one this code expects), and the dashboard at / (its
pages, JSON API and live stream: web/dashboard.py) when one is given.

/healthz and /readyz say nothing secret and stay open for probes. /metrics needs the metrics
token when one is set; without one, while the gRPC service authenticates, it answers only
clients on this machine (loopback): the counts describe the work of every orchestrator.
Every error is JSON: {"error": "..."}.
"""

from __future__ import annotations

import errno
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from workengine.addresses import is_loopback
from workengine.engine.operations import Operations
from workengine.telemetry.metrics import Metrics
from workengine.web.dashboard import Dashboard

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SidePortBindError(RuntimeError):
    pass


@dataclass(frozen=True)
class MetricsAccess:
    """Who may read /metrics: with `token`, whoever presents it; else everyone, unless the
    server authenticates (`authenticating`), then only loopback clients."""

    token: str | None = None
    authenticating: bool = False

    def refusal(self, request: web.Request) -> web.Response | None:
        if self.token is not None:
            scheme, _, presented = request.headers.get("Authorization", "").strip().partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(
                presented.strip().encode(), self.token.encode()
            ):
                return None
            return error_response(
                401, "/metrics needs the metrics token: Authorization: Bearer <token>", bearer=True
            )
        if self.authenticating and not is_loopback(request.remote or ""):
            return error_response(
                403,
                "/metrics answers only loopback clients while authentication is on; set "
                "--metrics-token (or WORKENGINE_METRICS_TOKEN_FILE) to scrape it from elsewhere",
            )
        return None


def error_response(status: int, message: str, *, bearer: bool = False) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="workengine-metrics"'} if bearer else None
    return web.json_response({"error": message}, status=status, headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own errors (an unknown path, a wrong method) as JSON like ours."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return error_response(error.status, f"{error.reason}: {request.method} {request.path}")


def build_app(
    operations: Operations, metrics: Metrics | None, access: MetricsAccess, dashboard: Dashboard | None = None
) -> web.Application:
    async def show_metrics(request: web.Request) -> web.Response:
        if metrics is None:
            return error_response(404, "metrics are off (WORKENGINE_METRICS=0)")
        if (refused := access.refusal(request)) is not None:
            return refused
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        readiness = await operations.readiness()
        body = {
            "ready": readiness.ready,
            "database": "reachable" if readiness.database_reachable else "unreachable",
            "schema_revision": readiness.schema_revision,
            "expected_revision": readiness.expected_revision,
        }
        if not readiness.ready:
            body["error"] = readiness.problem
        return web.json_response(body, status=200 if readiness.ready else 503)

    app = web.Application(middlewares=[json_errors])
    app.router.add_get("/metrics", show_metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if dashboard is not None:
        dashboard.add_routes(app)
    return app


@dataclass
class SidePort:
    runner: web.AppRunner
    url: str

    async def stop(self) -> None:
        await self.runner.cleanup()


def http_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("localhost" if host == "::" else host)
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


async def start_side_port(app: web.Application, host: str, port: int) -> SidePort:
    """Serves `app` on host:port; SidePortBindError when the port cannot be had."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_port=False).start()
    except OSError as error:
        await runner.cleanup()
        why = "the port is in use" if error.errno == errno.EADDRINUSE else (error.strerror or str(error))
        raise SidePortBindError(f"cannot listen on {host}:{port} (HTTP): {why}") from None
    return SidePort(runner, http_url(host, port))
