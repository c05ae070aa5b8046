"""CORS for the ingest API, per source: a browser page on an allowed origin may send feedback
with the source's publishable key; preflights are answered for the origins some active source
allows; the real request is checked against its own key's source before anything is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from apps.feedback.models import Event
from apps.sources.cors import forget_known_origins
from tests.conftest import Api, SourceWithKeys, rating

CHAT = "https://chat.cors-test.example"


@pytest.fixture(autouse=True)
def _no_origins_from_earlier_tests() -> None:
    # A test's sources vanish in its rollback, which sends no signal: start from a clean cache.
    forget_known_origins()


@pytest.fixture
def web(make_source: Any) -> SourceWithKeys:
    return make_source("web", allowed_origins=[CHAT, "http://localhost:3000"])


def _preflight(client: Client, origin: str, path: str = "/api/v1/feedback") -> Any:
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )


def _vary(response: Any) -> set[str]:
    return {part.strip().lower() for part in response.get("Vary", "").split(",") if part.strip()}


@pytest.mark.parametrize("origin", [CHAT, "http://localhost:3000"])
def test_a_preflight_from_an_allowed_origin_is_allowed(
    client: Client, web: SourceWithKeys, origin: str
) -> None:
    response = _preflight(client, origin)

    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == origin
    assert "POST" in response["Access-Control-Allow-Methods"]
    allowed_headers = {
        h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")
    }
    assert {"authorization", "content-type"} <= allowed_headers
    assert int(response["Access-Control-Max-Age"]) > 0
    assert "origin" in _vary(response)
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.cors-test.example",
        CHAT + ".evil.example",
        "null",
        CHAT.replace("https", "http"),
    ],
)
def test_a_preflight_from_an_unknown_origin_gets_no_allow_header(
    client: Client, web: SourceWithKeys, origin: str
) -> None:
    response = _preflight(client, origin)

    assert response.status_code == 204
    assert not response.has_header("Access-Control-Allow-Origin")
    assert "origin" in _vary(response)


def test_a_source_that_allows_every_origin_answers_any_preflight(
    client: Client, make_source: Any
) -> None:
    make_source("open", allowed_origins=["*"])

    response = _preflight(client, "https://anywhere.example")

    assert response["Access-Control-Allow-Origin"] == "https://anywhere.example"


def test_a_new_sources_origin_is_allowed_at_once(client: Client, make_source: Any) -> None:
    newcomer = "https://newcomer.cors-test.example"
    assert not _preflight(client, newcomer).has_header("Access-Control-Allow-Origin")

    make_source("newcomer", allowed_origins=[newcomer])

    assert _preflight(client, newcomer)["Access-Control-Allow-Origin"] == newcomer


def test_a_removed_origin_is_refused_at_once(client: Client, web: SourceWithKeys) -> None:
    assert _preflight(client, CHAT).has_header("Access-Control-Allow-Origin")

    web.source.allowed_origins = []
    web.source.save()

    assert not _preflight(client, CHAT).has_header("Access-Control-Allow-Origin")
    response = Api(client, web.publishable).post(rating(), origin=CHAT)
    assert response.status_code == 403
    assert Event.objects.count() == 0


def test_the_origins_of_a_deactivated_source_are_not_allowed(
    client: Client, make_source: Any
) -> None:
    make_source("retired", allowed_origins=["https://retired.cors-test.example"], is_active=False)

    assert not _preflight(client, "https://retired.cors-test.example").has_header(
        "Access-Control-Allow-Origin"
    )


def test_a_browser_post_from_an_allowed_origin_is_stored_and_readable_by_the_page(
    client: Client, web: SourceWithKeys
) -> None:
    response = Api(client, web.publishable).post(rating(), origin=CHAT)

    assert response.status_code == 201
    assert response["Access-Control-Allow-Origin"] == CHAT
    assert "retry-after" in response["Access-Control-Expose-Headers"].lower()
    assert "origin" in _vary(response)
    assert Event.objects.get().source == web.source


def test_a_browser_post_from_another_origin_is_refused_and_stores_nothing(
    client: Client, web: SourceWithKeys
) -> None:
    response = Api(client, web.publishable).post(rating(), origin="https://evil.cors-test.example")

    assert response.status_code == 403
    assert not response.has_header("Access-Control-Allow-Origin")
    assert Event.objects.count() == 0


def test_an_origin_allowed_by_another_source_does_not_open_this_sources_key(
    client: Client, web: SourceWithKeys, make_source: Any
) -> None:
    make_source("other", allowed_origins=["https://other.cors-test.example"])

    preflight = _preflight(client, "https://other.cors-test.example")
    response = Api(client, web.publishable).post(rating(), origin="https://other.cors-test.example")

    assert preflight["Access-Control-Allow-Origin"] == "https://other.cors-test.example"
    assert response.status_code == 403
    assert Event.objects.count() == 0


def test_an_error_answer_to_an_allowed_origin_is_readable_by_the_page(
    client: Client, web: SourceWithKeys
) -> None:
    response = Api(client, "pk-unknown-key").post(rating(), origin=CHAT)

    assert response.status_code == 401
    assert response["Access-Control-Allow-Origin"] == CHAT
    assert response.json()["error"]["message"]


def test_the_origin_is_added_to_vary_not_put_in_place_of_it(api: Api, web: SourceWithKeys) -> None:
    with_origin = api.client.get(
        "/api/v1/feedback", HTTP_AUTHORIZATION=f"Bearer {api.key}", HTTP_ORIGIN=CHAT
    )
    without_origin = api.get("/api/v1/feedback")

    assert {"accept", "origin"} <= _vary(with_origin)
    assert {"accept", "origin"} <= _vary(without_origin)


def test_pages_outside_the_feedback_api_get_no_cors_headers(
    client: Client, web: SourceWithKeys
) -> None:
    schema = client.get("/api/schema/", HTTP_ORIGIN=CHAT)
    preflight = _preflight(client, CHAT, path="/admin/")

    assert not schema.has_header("Access-Control-Allow-Origin")
    assert not preflight.has_header("Access-Control-Allow-Origin")


def test_a_browser_cannot_read_with_a_publishable_key(client: Client, web: SourceWithKeys) -> None:
    Api(client, web.secret).post(rating())

    response = client.get(
        "/api/v1/feedback", HTTP_AUTHORIZATION=f"Bearer {web.publishable}", HTTP_ORIGIN=CHAT
    )

    assert response.status_code == 403
    assert "results" not in json.loads(response.content)
