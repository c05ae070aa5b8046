"""Debian's Chromium driven by Playwright's sync API, for the packages with browser tests.

Each such package has its own package-scoped `browser` fixture that enters `chromium()`: one
browser per package, closed when the package's tests end. Playwright's sync API keeps an asyncio
loop running in this thread while it is open, so two may never be open at once (and nothing
after it may call `asyncio.run`): a session-wide browser would break the SDK's async tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@contextmanager
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="browser tests need Playwright for Python (pip install playwright)",
    )
    # The tests' own database reads are plain synchronous calls: Django's async-context guard,
    # which the running loop would trip, is lifted while the browser is open.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_api.sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        yield browser
        browser.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous
