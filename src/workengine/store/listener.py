"""One LISTEN connection per process, so commits in any process wake this one's event feed.

The connection is psycopg's own (autocommit, outside the pool): while `notifies()` waits, no
other statement can use it. When it drops (database restart, pg_terminate_backend) it is
reopened with backoff, and the callback runs once more after each (re)connect so the feed
catches up from the event table on whatever was committed while nobody listened.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

CHANNEL = "workengine_events"
APPLICATION_NAME = "workengine-listener"
MAX_BACKOFF_SECONDS = 5.0


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class Listener:
    def __init__(self, url: str, on_notify: Callable[[str], None], channel: str = CHANNEL) -> None:
        self._url = libpq_url(url)
        self._on_notify = on_notify
        self._channel = channel
        self._listening = False
        self.connections = 0  # LISTENs that succeeded: 1 + reconnections

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen()
            except psycopg.Error as error:
                log.warning("event listener connection lost (%s); reconnecting", str(error).strip())
            # Consecutive failures back off; a connection that got to LISTEN starts over.
            failures = 1 if self._listening else failures + 1
            self._listening = False
            await asyncio.sleep(min(0.1 * 2 ** (failures - 1), MAX_BACKOFF_SECONDS))

    async def _listen(self) -> None:
        connection = await psycopg.AsyncConnection.connect(
            self._url,
            autocommit=True,
            application_name=APPLICATION_NAME,
            # A silently vanished server (network cut) is noticed in about 25 s, not hours.
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
        )
        async with connection:
            await connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
            if self.connections:
                log.info("event listener reconnected")
            self.connections += 1
            self._listening = True
            self._on_notify("")  # catch up on anything committed while not listening
            async for notification in connection.notifies():
                self._on_notify(notification.payload)
