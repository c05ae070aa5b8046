"""Browser fixtures: Debian's Chromium driven by Playwright, against pytest-django's live server.

Pages that embed the widget come from a small HTTP server of their own at http://127.0.0.1:PORT,
while Sinkhole (the live server) answers at http://localhost:OTHER: two origins, so every test
goes through the real cross-origin path (CORS preflight, the publishable key's allowed
origins), as on a customer's site."""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from apps.feedback.models import Event
from apps.sources import cors
from tests.browser import chromium


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


class HostPages:
    """An HTTP server on 127.0.0.1 that answers each path with the page registered for it."""

    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                body = pages.get(self.path.split("?")[0])
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body or b"not found")

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: the tests read the page, not this log

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="package")
def host_pages() -> Iterator[HostPages]:
    pages = HostPages()
    yield pages
    pages.close()


@dataclass
class Tab:
    """A page plus what it said: console messages, uncaught errors, dialogs (alert, confirm)."""

    page: Any
    context: Any
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    in_flight: set[Any] = field(default_factory=set)  # requests to the ingest API not yet answered

    def warnings(self) -> list[str]:
        return [m for m in self.console if m.startswith("warning:")]


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    opened = Tab(page, context)
    page.on("console", lambda m: opened.console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: opened.errors.append(str(e)))

    def on_dialog(dialog: Any) -> None:
        opened.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("request", lambda r: "/api/v1/feedback" in r.url and opened.in_flight.add(r))
    page.on("requestfinished", lambda r: opened.in_flight.discard(r))
    page.on("requestfailed", lambda r: opened.in_flight.discard(r))
    yield opened
    # Let every request to Sinkhole finish before the test database is flushed: a request still
    # inside the server would hold locks that the flush waits for, and the other way round.
    # Open drafts would go out on pagehide as keepalive requests, which Playwright does not
    # report, so they are sent (and awaited) while the page is still there.
    try:
        try:
            page.evaluate(
                """async () => {
                  if (!window.Sinkhole) return;
                  window.dispatchEvent(new PageTransitionEvent('pagehide'));
                  await Sinkhole.flush();
                }"""
            )
        except sync_error():
            pass  # a page that broke its own built-ins breaks Playwright's evaluate too
        page.goto("about:blank")
        deadline = time.monotonic() + 10
        while opened.in_flight and time.monotonic() < deadline:
            page.wait_for_timeout(50)
    finally:
        context.close()


def sync_error() -> type[Exception]:
    from playwright.sync_api import Error

    return Error


@dataclass
class Site:
    """A host page's origin, the Sinkhole it talks to, and the key it uses."""

    origin: str
    endpoint: str
    key: str
    tab: Tab
    pages: HostPages

    @property
    def page(self) -> Any:
        return self.tab.page

    def open(
        self,
        body: str = "",
        *,
        script: str = "",
        before: str = "",
        head: str = "",
        attrs: dict[str, str] | None = None,
        path: str = "/chat",
        wait: bool = True,
    ) -> Any:
        """Serve a host page at ORIGIN+PATH and open it. BEFORE runs ahead of the widget's
        script tag, SCRIPT after it; ATTRS are extra data-* attributes of the script tag."""
        tag_attrs = {"src": f"{self.endpoint}/static/sinkhole/widget.js", "data-key": self.key}
        tag_attrs.update(attrs or {})
        tag = " ".join(f'{k}="{html.escape(v)}"' for k, v in tag_attrs.items())
        document = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>host</title>"
            f"{head}</head><body><main>{body}</main>"
            f"<script>{before}</script><script {tag}></script><script>{script}</script>"
            "</body></html>"
        )
        self.pages.pages[path] = document.encode()
        self.page.goto(f"{self.origin}{path}")
        if wait:  # (a page that breaks Array.prototype breaks Playwright's main-world helpers too)
            self.page.wait_for_function("() => window.Sinkhole && window.Sinkhole.version")
        return self.page

    def pending(self) -> int:
        return self.page.evaluate("() => Sinkhole.pending()")


@pytest.fixture
def site(
    live_server: Any,
    host_pages: HostPages,
    make_source: Callable[..., Any],
    tab: Tab,
    monkeypatch: pytest.MonkeyPatch,
) -> Site:
    endpoint = live_server.url.rstrip("/")
    made = make_source("widget-host", allowed_origins=[host_pages.origin])
    # The CORS middleware caches the allowed origins for a few seconds; start from fresh.
    monkeypatch.setattr(cors, "_cached", (0.0, frozenset()))
    return Site(
        origin=host_pages.origin, endpoint=endpoint, key=made.publishable, tab=tab, pages=host_pages
    )


def wait_for_events(tab: Tab, count: int, *, timeout: float = 10.0, **filters: Any) -> list[Event]:
    """The stored events (oldest first) once there are COUNT of them; fails after TIMEOUT."""
    deadline = time.monotonic() + timeout
    while True:
        events = list(Event.objects.filter(**filters).order_by("id"))
        if len(events) >= count or time.monotonic() > deadline:
            assert len(events) == count, f"expected {count} stored events, found {len(events)}"
            return events
        tab.page.wait_for_timeout(100)  # keeps Playwright's event loop turning while we wait


def wait_until(tab: Tab, check: Callable[[], Any], *, timeout: float = 10.0) -> Any:
    """CHECK's first truthy answer; fails after TIMEOUT."""
    deadline = time.monotonic() + timeout
    while not (answer := check()):
        assert time.monotonic() < deadline, "gave up waiting"
        tab.page.wait_for_timeout(100)
    return answer
