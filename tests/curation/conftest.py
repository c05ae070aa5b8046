"""Fixtures of the curation tests: users in each role, events stored through the real ingest
service (normalized and judged by the real quality pipeline), and for the browser tests a live
server with Chromium (the pattern of tests/frontend/conftest.py)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from apps.curation.roles import ensure_roles
from apps.feedback.models import Event
from apps.feedback.services.ingest import feedback_ingest
from apps.feedback.services.normalize import feedback_events_normalize
from apps.quality.services import quality_events_judge
from tests.browser import chromium

PASSWORD = "correct horse battery"
_ids = itertools.count(1)


def user_in(role: str | None, name: str) -> Any:
    ensure_roles()
    user = get_user_model().objects.create_user(name, password=PASSWORD)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def curator(db: Any) -> Any:
    return user_in("curator", "cora")


@pytest.fixture
def viewer(db: Any) -> Any:
    return user_in("viewer", "vic")


@pytest.fixture
def add_events(make_source: Callable[..., Any]) -> Callable[..., list[Event]]:
    """ADD_EVENTS(item, item, …, source="name", judge=True): store events through the ingest
    service, normalize and judge them; the stored events in the given order."""
    sources: dict[str, Any] = {}

    def add(*items: dict[str, Any], source: str = "chat-app", judge: bool = True) -> list[Event]:
        if source not in sources:
            sources[source] = make_source(source).source
        prepared = []
        for item in items:
            item = dict(item)
            item["id"] = f"t-{next(_ids)}"  # the tests.conftest builders share one id
            prepared.append(item)
        results = feedback_ingest(source=sources[source], items=prepared)
        ids = [r.id for r in results]
        assert all(ids), [r.__dict__ for r in results]
        feedback_events_normalize(event_ids=ids)
        if judge:
            quality_events_judge(event_ids=ids)
        by_id = Event.objects.in_bulk(ids)
        return [by_id[i] for i in ids]

    return add


# --- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@dataclass
class Desk:
    """A logged-in curator's browser tab on the live server, with what the page said."""

    page: Any
    url: str
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def go(self, path: str) -> Any:
        self.page.goto(self.url + path)
        return self.page

    def wait_until(self, check: Callable[[], Any], timeout: float = 10.0) -> Any:
        import time

        deadline = time.monotonic() + timeout
        while not (answer := check()):
            assert time.monotonic() < deadline, "gave up waiting"
            self.page.wait_for_timeout(100)
        return answer


@pytest.fixture
def desk(browser: Any, live_server: Any, transactional_db: Any) -> Iterator[Desk]:
    """A browser context logged in through the real login form as a curator."""
    user_in("curator", "cora")
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    opened = Desk(page, live_server.url.rstrip("/"))
    page.on("pageerror", lambda e: opened.errors.append(str(e)))

    def on_dialog(dialog: Any) -> None:
        opened.dialogs.append(f"{dialog.type}: {dialog.message}")
        if dialog.type == "confirm":
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(opened.url + "/accounts/login/?next=/inbox/")
    page.fill("input[name=username]", "cora")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/inbox/**")
    yield opened
    page.goto("about:blank")
    context.close()
