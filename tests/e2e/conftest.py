"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.kubernetes import KUBERNETES, OVERLAY, Resource, render, with_components
from tests.e2e.serving import ServeProcess, clean_env


@pytest.fixture
def served(empty_database_url: str) -> Iterator[ServeProcess]:
    server = ServeProcess("--database-url", empty_database_url, env=clean_env())
    server.wait_listening()
    yield server
    server.kill()


# deploy/kubernetes, rendered (tests/e2e/test_kubernetes*.py)


@pytest.fixture(scope="module")
def base() -> list[Resource]:
    return render(KUBERNETES / "base")


@pytest.fixture(scope="module")
def overlay() -> list[Resource]:
    return render(OVERLAY)


@pytest.fixture(scope="module")
def with_tls(tmp_path_factory: pytest.TempPathFactory) -> list[Resource]:
    return render(with_components(tmp_path_factory.mktemp("tls"), "tls", "servicemonitor"))


@pytest.fixture(params=["base", "overlay", "with_tls"])
def rendered(request: pytest.FixtureRequest) -> list[Resource]:
    """Each way the manifests are meant to be used."""
    resources: list[Resource] = request.getfixturevalue(request.param)
    return resources
