"""A server wired as `workengine serve` wires it (metrics, HTTP side port), in the test's loop,
and what a test needs to read its /metrics."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc
from prometheus_client.parser import text_string_to_metric_families

from workengine.config import ServeSettings
from workengine.serve import Serving, build_engine, start_serving
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Monitored:
    serving: Serving
    stub: pb_grpc.WorkEngineServiceStub
    channel: grpc.aio.Channel
    http: str  # http://host:port

    async def get(self, path: str, **headers: str) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.http + path, headers=headers) as response,
        ):
            return response.status, await response.text()

    async def scrape(self) -> Samples:
        status, text = await self.get("/metrics")
        assert status == 200, text
        return parse(text)


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; KeyError when /metrics does not have that series at all (so a
    renamed or unexported metric never passes for a 0)."""
    key = (name, frozenset(labels.items()))
    if key not in samples:
        raise KeyError(f"{name}{labels} is not in /metrics")
    return samples[key]


async def eventually(check: Callable[[], Any], within: float = 10.0) -> None:
    """Retries an async `check` (which asserts) until it passes or `within` seconds run out."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            await check()
            return
        except (AssertionError, KeyError):  # KeyError: a series that is not there yet
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


@asynccontextmanager
async def monitored_server(database_url: str, **flags: Any) -> AsyncIterator[Monitored]:
    """`flags` as `serve` takes them (setting -> value); the gRPC port is free, the HTTP one too."""
    flags = {
        "port": 0,
        "http_port": free_port(),
        "metrics_refresh": 0.2,
        "maintenance_interval": 0.2,
        "pool_size": 5,
    } | flags
    settings = ServeSettings.from_sources(flags, env={})
    engine, metrics = build_engine(settings, database_url)
    serving = await start_serving(settings, engine, metrics)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{serving.grpc.port}")
    try:
        yield Monitored(
            serving, pb_grpc.WorkEngineServiceStub(channel), channel, f"http://127.0.0.1:{settings.http_port}"
        )
    finally:
        await channel.close()
        await serving.stop(0)
        await engine.close()
