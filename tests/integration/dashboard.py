"""What the dashboard tests share: an HTTP client that keeps cookies, a side port with a
dashboard of a chosen policy, and reading the live stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.integration.monitoring import free_port
from workengine.engine import WorkEngine
from workengine.web.auth import Policy
from workengine.web.dashboard import Dashboard
from workengine.web.side_port import MetricsAccess, build_app, start_side_port

ADMIN_TOKEN = "dashboard-admin-token-0123456789"


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def field(self) -> str:
        return str(self.body.get("field", "")) if isinstance(self.body, dict) else ""


class Browserless:
    """An HTTP client as a browser is one: it keeps cookies (also for 127.0.0.1, which
    aiohttp's default jar refuses) and does not follow redirects, so tests see them."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.session.close()

    async def request(self, method: str, path: str, **options: Any) -> Answer:
        options.setdefault("allow_redirects", False)
        async with self.session.request(method, self.base + path, **options) as response:
            text = await response.text()
            try:
                body: Any = json.loads(text)
            except ValueError:
                body = text
            return Answer(response.status, body, dict(response.headers))

    async def get(self, path: str, **headers: str) -> Answer:
        return await self.request("GET", path, headers=headers)

    async def post(self, path: str, *, data: Any = None, **headers: str) -> Answer:
        return await self.request("POST", path, data=data, headers=headers)

    async def sign_in(self, token: str = ADMIN_TOKEN) -> str:
        """Signs in; returns the session's CSRF token."""
        answer = await self.post("/signin", data={"token": token})
        assert answer.status == 303 and answer.headers["Location"] == "/", answer
        session = await self.get("/api/session")
        assert session.status == 200 and session.body["signed_in"], session
        return str(session.body["csrf_token"])


@asynccontextmanager
async def dashboard_port(engine: WorkEngine, policy: Policy) -> AsyncIterator[str]:
    """A side port with only a dashboard of `policy` (the rules `serve` derives from its
    settings, here chosen directly, e.g. a non-loopback host without binding one)."""
    port = free_port()
    app = build_app(
        engine.operations, None, MetricsAccess(), Dashboard(engine, policy, max_streams_per_client=100)
    )
    side_port = await start_side_port(app, "127.0.0.1", port)
    try:
        yield side_port.url
    finally:
        await side_port.stop()


async def read_events(
    response: aiohttp.ClientResponse, count: int, within: float = 10.0
) -> list[tuple[str, str, Any]]:
    """The next `count` events of an SSE stream as (id, event, data), comments skipped."""
    found: list[tuple[str, str, Any]] = []
    event_id, name, data = "", "message", ""
    async with asyncio.timeout(within):
        while len(found) < count:
            line = (await response.content.readline()).decode()
            if not line:
                raise AssertionError(f"the stream ended after {found}")
            line = line.rstrip("\n")
            if not line:
                if data:
                    found.append((event_id, name, json.loads(data)))
                event_id, name, data = "", "message", ""
            elif line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
    return found
