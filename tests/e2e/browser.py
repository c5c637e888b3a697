"""A real browser for the dashboard's tests: Debian's Chromium driven by Playwright for Python,
with no browser download (`executable_path` names the system's). Without Chromium the tests
skip with the line that installs it, except in CI, where they fail (tests/tools.py).

The flags: headless without a sandbox (CI runs as root, where Chromium's sandbox cannot start)
and without a GPU; no QUIC, first-run screens, component updates, sync or other background
networking, so the browser talks to nothing but the server under test.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.tools import ROOT, system_tool

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, ViewportSize

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL = "apt-get install -y chromium (Debian's package; the dashboard's browser tests drive it)"
# Screenshots of every view, to look at: a layout is judged by eye (git ignores the directory).
ARTIFACTS = Path(os.environ.get("WORKENGINE_TEST_ARTIFACTS", ROOT / "tests" / "artifacts")) / "dashboard"
WIDE: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


async def launch() -> AsyncIterator[Browser]:
    """The browser, closed after use (an async generator, for a fixture)."""
    executable = system_tool("chromium", INSTALL)
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]'")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


async def screenshots(page: Page, name: str) -> list[Path]:
    """The page as it is, whole, at a desktop and at a phone width; the paths written."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    written = []
    for size in (WIDE, PHONE):
        await page.set_viewport_size(size)
        await page.wait_for_timeout(300)  # layout and the progress bars' transitions settle
        path = ARTIFACTS / f"{name}-{size['width']}x{size['height']}.png"
        await page.screenshot(path=str(path), full_page=True)
        written.append(path)
    if before is not None:
        await page.set_viewport_size(before)
    print(f"screenshots: {', '.join(str(p) for p in written)}")
    return written
