"""The README and docs/ stay usable: the README is short, every relative link leads somewhere,
and the README's Python daemon loop runs as written against a live server.

(The grpcurl commands of the README and of docs/grpcurl.md are run by test_docs_grpcurl.py.)
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import grpc
from google.protobuf import json_format

from tests.e2e.test_docs_grpcurl import DOC_TARGET, FENCED_BLOCK, README, README_LOOP_SECTION, ROOT, section
from workengine.client import AsyncWorkEngineClient
from workengine.v1 import task_pb2

MAX_README_LINES = 200
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", flags=re.MULTILINE)


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCED_BLOCK.sub("", path.read_text())
    return {github_anchor(heading) for heading in HEADING.findall(text)}


def relative_links(path: Path) -> list[str]:
    text = FENCED_BLOCK.sub("", path.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    return [link for link in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", link)]


def test_the_readme_is_at_most_200_lines() -> None:
    lines = len(README.read_text().splitlines())

    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move details to docs/"


def test_every_relative_link_of_the_readme_and_docs_resolves() -> None:
    assert len(DOCUMENTS) > 1, "docs/ has no pages"
    broken: list[str] = []
    for document in DOCUMENTS:
        for link in relative_links(document):
            target, _, anchor = link.partition("#")
            path = (document.parent / target).resolve() if target else document
            where = f"{document.relative_to(ROOT)}: {link}"
            if not path.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and (path.suffix != ".md" or anchor not in anchors(path)):
                broken.append(f"{where} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_link_checker_sees_a_broken_file_and_a_broken_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# A title, with `code`\n\n[ok](#a-title-with-code) [gone](missing.md) `[not](a-link)`\n")

    assert relative_links(page) == ["#a-title-with-code", "missing.md"]
    assert anchors(page) == {"a-title-with-code"}


def readme_python_loop() -> str:
    blocks: list[tuple[str, str]] = FENCED_BLOCK.findall(section(README.read_text(), README_LOOP_SECTION))
    python = [code for language, code in blocks if language == "python"]
    assert len(python) == 1, f"the README's loop section has {len(python)} python blocks, not 1"
    return python[0]


async def _failed(process: asyncio.subprocess.Process) -> str:
    _, stderr = await process.communicate()
    return f"the README's loop exited with {process.returncode}:\n{stderr.decode()}"


async def test_the_readme_python_loop_runs_as_written(target: str) -> None:
    """The loop registers `ada`, then claims forever: it runs in its own process; this test gives
    `ada` a task, waits for the loop to finish it, then stops the process."""
    code = readme_python_loop()
    assert code.count(DOC_TARGET) == 1, "the loop should name the server once"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code.replace(DOC_TARGET, target),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with AsyncWorkEngineClient(target) as client, asyncio.timeout(60):
            while True:
                assert process.returncode is None, await _failed(process)
                try:
                    await client.get_orchestrator("ada")
                    break
                except grpc.RpcError as error:
                    if error.code() != grpc.StatusCode.NOT_FOUND:
                        raise
                await asyncio.sleep(0.1)
            created = await client.create_task("ada", "ws-1", "Write the spec")
            while (task := await client.get_task(created.id)).status != task_pb2.TASK_STATUS_DONE:
                assert process.returncode is None, await _failed(process)
                await asyncio.sleep(0.1)
            attempts = await client.get_task_attempts(created.id)
        assert json_format.MessageToDict(task.result.output) == {"summary": "did Write the spec"}
        assert [a.outcome for a in attempts] == [task_pb2.ATTEMPT_OUTCOME_COMPLETED]
        assert process.returncode is None, await _failed(process)  # still waiting for more work
    finally:
        if process.returncode is None:
            process.kill()
        await process.communicate()
