"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.serving import ServeProcess, clean_env


@pytest.fixture
def served(empty_database_url: str) -> Iterator[ServeProcess]:
    server = ServeProcess("--database-url", empty_database_url, env=clean_env())
    server.wait_listening()
    yield server
    server.kill()
