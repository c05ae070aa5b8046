"""The demo chat page (/demo/widget, apps/site/demo.py): on where it should be, with a working
publishable key for its own origin, and the widget on it storing what a visitor clicks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from apps.site.demo import DEMO_WIDGET_KEY_FILE, DEMO_WIDGET_SOURCE, demo_pages_enabled
from apps.sources.models import ApiKey, Source
from tests.frontend.conftest import Tab, wait_for_events


@pytest.fixture
def demo_on(settings: Any, tmp_path: Path) -> Path:
    settings.SINKHOLE_DEMO_PAGES = True
    settings.DATA_DIR = tmp_path
    return tmp_path


@pytest.mark.parametrize("setting", [True, False])
def test_demo_pages_follow_the_setting(settings: Any, setting: bool) -> None:
    settings.SINKHOLE_DEMO_PAGES = setting
    assert demo_pages_enabled() is setting


@pytest.mark.parametrize(
    ("env", "debug", "database_url", "expected"),
    [
        (None, False, "", True),  # embedded: on
        (None, True, "postgres://db/x", True),  # DEBUG: on
        (None, False, "postgres://db/x", False),  # distributed production: off
        ("true", False, "postgres://db/x", True),
        ("false", False, "", False),
    ],
)
def test_demo_pages_default_to_on_in_embedded_mode_and_with_debug(
    env: str | None, debug: bool, database_url: str, expected: bool
) -> None:
    import os
    import subprocess
    import sys

    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SINKHOLE_DEMO_PAGES", "DATABASE_URL", "DEBUG"}
    }
    environ.update({"DEBUG": "true" if debug else "false", "DATABASE_URL": database_url})
    if env is not None:
        environ["SINKHOLE_DEMO_PAGES"] = env
    code = "import config.settings as s; print(s.SINKHOLE_DEMO_PAGES)"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=environ,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == str(expected)


def test_the_demo_page_answers_404_when_demo_pages_are_off(
    db: Any, client: Client, settings: Any
) -> None:
    settings.SINKHOLE_DEMO_PAGES = False
    assert client.get("/demo/widget").status_code == 404
    assert not Source.objects.filter(name=DEMO_WIDGET_SOURCE).exists()


def test_the_demo_page_embeds_a_key_that_works_from_its_origin_and_keeps_it(
    db: Any, client: Client, demo_on: Path
) -> None:
    first = client.get("/demo/widget")
    assert first.status_code == 200
    key = first.context["key"]
    assert key.startswith("pk-") and f'data-key="{key}"' in first.content.decode()
    assert (demo_on / DEMO_WIDGET_KEY_FILE).read_text() == key
    assert (demo_on / DEMO_WIDGET_KEY_FILE).stat().st_mode & 0o777 == 0o600

    again = client.get("/demo/widget", HTTP_HOST="localhost")  # a second origin, same key
    assert again.context["key"] == key
    source = Source.objects.get(name=DEMO_WIDGET_SOURCE)
    assert source.allowed_origins == ["http://testserver", "http://localhost"]
    assert source.keys.filter(kind=ApiKey.Kind.PUBLISHABLE).count() == 1

    answer = client.post(
        "/api/v1/feedback",
        {
            "type": "rating",
            "id": "demo-1",
            "messages": [{"role": "user", "content": "hi"}],
            "response": "hello",
            "rating": 1,
        },
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
        HTTP_ORIGIN="http://localhost",
    )
    assert answer.status_code == 201

    (demo_on / DEMO_WIDGET_KEY_FILE).unlink()  # lost (a new data folder): a new key, kept again
    fresh = client.get("/demo/widget").context["key"]
    assert fresh != key and (demo_on / DEMO_WIDGET_KEY_FILE).read_text() == fresh


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_demo_chat_page_collects_ratings_and_a_choice(
    live_server: Any, tab: Tab, demo_on: Path
) -> None:
    page = tab.page
    page.goto(f"{live_server.url}/demo/widget")
    first = page.locator("sinkhole-rating").first
    first.get_by_role("button", name="Bad response").click()
    first.get_by_role("button", name="Not factually correct").click()
    first.get_by_role("textbox", name="Add a comment (optional)").fill("It is Canberra.")
    first.get_by_role("button", name="Send", exact=True).click()
    page.locator("sinkhole-compare").get_by_role("button", name="A is better").click()
    page.get_by_role("textbox", name="Your message").fill("And of New Zealand?")
    page.get_by_role("textbox", name="Your message").press("Enter")
    newest = page.locator("sinkhole-rating").last
    newest.get_by_role("button", name="Good response").click()
    newest.get_by_role("button", name="Close and send").click()

    rating, preference, thumbs_up = wait_for_events(tab, 3, source__name=DEMO_WIDGET_SOURCE)
    assert (rating.model, rating.payload["rating"], rating.payload["reason"]) == (
        "llama3.1:8b",
        -1,
        "not_factually_correct",
    )
    assert rating.payload["comment"] == "It is Canberra."
    assert rating.payload["messages"] == [
        {"role": "user", "content": "What is the capital of Australia?"}
    ]
    assert preference.payload["choice"] == 0
    assert [r["model"] for r in preference.payload["responses"]] == ["llama3.1:8b", "qwen2.5:7b"]
    assert (thumbs_up.model, thumbs_up.payload["rating"]) == ("pretend-7b", 1)
    assert thumbs_up.payload["messages"][-1] == {"role": "user", "content": "And of New Zealand?"}
    assert page.locator("#log li").count() == 3
    assert tab.errors == [] and tab.dialogs == []
