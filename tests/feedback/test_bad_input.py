"""The bad-input matrix: every way a request can be wrong gets a 4xx with a clear message
(field by field where there are fields), never a 500, and stores nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from apps.feedback.models import Event
from apps.feedback.schema import MAX_EVENT_DEPTH, MAX_METADATA_BYTES, MAX_TEXT
from apps.sources.services import api_key_revoke
from tests.conftest import Api, SourceWithKeys, preference, rating

PROMPT = [{"role": "user", "content": "Say hi"}]


def ranking(**overrides: Any) -> dict[str, Any]:
    event = {
        "type": "ranking",
        "id": "evt-r",
        "messages": PROMPT,
        "responses": [{"content": "a"}, {"content": "b"}, {"content": "c"}],
        "ranking": [2, 0, 1],
    }
    event.update(overrides)
    return event


def edit(**overrides: Any) -> dict[str, Any]:
    event = {
        "type": "edit",
        "id": "evt-e",
        "messages": PROMPT,
        "response": "Hi!",
        "edited": "Hello!",
    }
    event.update(overrides)
    return event


def without(event: dict[str, Any], *fields: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in fields}


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def listed(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.fixture
def unchanged_event_count(db: Any) -> Any:
    """Fails the test if it stored anything."""
    before = Event.objects.count()
    yield
    assert Event.objects.count() == before, "a refused request stored events"


def _fields(response: Any) -> dict[str, list[str]]:
    return response.json()["error"].get("fields", {})


# --- one invalid event: 400 with the field named --------------------------------------------------

INVALID = {
    # wrong types, field by field
    "type-not-a-string": (rating(type=1), "type", "must be one of"),
    "type-unknown": (rating(type="thumbs"), "type", "must be one of"),
    "id-number": (rating(id=42), "id", "valid string"),
    "id-empty": (rating(id=""), "id", "at least 1 character"),
    "rater-number": (rating(rater=7), "rater", "valid string"),
    "rater-object": (rating(rater={"id": 7}), "rater", "valid string"),
    "model-list": (rating(model=["a"]), "model", "valid string"),
    "checkpoint-number": (rating(checkpoint=3), "checkpoint", "valid string"),
    "messages-string": (rating(messages="hi"), "messages", "valid list"),
    "messages-empty": (rating(messages=[]), "messages", "at least 1 item"),
    "message-a-string": (rating(messages=["hi"]), "messages.0", "valid dictionary"),
    "message-role-unknown": (
        rating(messages=[{"role": "boss", "content": "x"}]),
        "messages.0.role",
        "'user'",
    ),
    "message-role-missing": (
        rating(messages=[{"content": "x"}]),
        "messages.0.role",
        "Field required",
    ),
    "message-content-number": (
        rating(messages=[{"role": "user", "content": 5}]),
        "messages.0.content",
        "valid string",
    ),
    "message-part-without-type": (
        rating(messages=[{"role": "user", "content": [{"text": "x"}]}]),
        "messages.0.content.0.type",
        "Field required",
    ),
    "response-number": (rating(response=5), "response", "valid string"),
    "rating-string": (rating(rating="1"), "rating", "1 or -1"),
    "rating-boolean": (rating(rating=True), "rating", "not true/false"),
    "rating-two": (rating(rating=2), "rating", "1 or -1"),
    "rating-float": (rating(rating=1.0), "rating", "whole number"),
    "score-string": (rating(rating=None, score="5"), "score", "valid integer"),
    "score-zero": (rating(rating=None, score=0), "score", "greater than or equal to 1"),
    "score-eleven": (rating(rating=None, score=11), "score", "less than or equal to 10"),
    "score-fraction": (rating(rating=None, score=5.5), "score", "whole number"),
    "score-float": (rating(rating=None, score=5.0), "score", "whole number"),
    "score-boolean": (rating(rating=None, score=False), "score", "not true/false"),
    "reason-number": (rating(reason=3), "reason", "valid string"),
    "comment-list": (rating(comment=["a"]), "comment", "valid string"),
    "tags-string": (rating(tags="code"), "tags", "valid list"),
    "tags-numbers": (rating(tags=[1]), "tags.0", "valid string"),
    "tag-empty": (rating(tags=[""]), "tags.0", "at least 1 character"),
    "metadata-list": (rating(metadata=[]), "metadata", "valid dictionary"),
    "metadata-string": (rating(metadata="{}"), "metadata", "valid dictionary"),
    "consent-string": (rating(consent="yes"), "consent", "valid boolean"),
    "consent-number": (rating(consent=1), "consent", "valid boolean"),
    "licence-number": (rating(licence=4), "licence", "valid string"),
    "timestamp-number": (rating(timestamp=1767225600), "timestamp", "ISO 8601"),
    "timestamp-words": (rating(timestamp="yesterday"), "timestamp", "isoformat"),
    "timestamp-without-zone": (rating(timestamp="2026-01-31T12:00:00"), "timestamp", "time zone"),
    "responses-string": (preference(responses="a, b"), "responses", "valid list"),
    "responses-strings": (preference(responses=["a", "b"]), "responses.0", "valid dictionary"),
    "responses-one": (preference(responses=[{"content": "a"}]), "responses", "at least 2 items"),
    "responses-three-for-a-preference": (
        preference(responses=[{"content": "a"}] * 3),
        "responses",
        "at most 2 items",
    ),
    "response-content-number": (
        preference(responses=[{"content": 1}, {"content": "b"}]),
        "responses.0.content",
        "valid string",
    ),
    "response-content-missing": (
        preference(responses=[{"model": "a"}, {"content": "b"}]),
        "responses.0.content",
        "Field required",
    ),
    "response-model-number": (
        preference(responses=[{"content": "a", "model": 1}, {"content": "b"}]),
        "responses.0.model",
        "valid string",
    ),
    "choice-string-digit": (preference(choice="0"), "choice", "0, 1, 'tie' or 'both_bad'"),
    "choice-two": (preference(choice=2), "choice", "0, 1, 'tie' or 'both_bad'"),
    "choice-boolean": (preference(choice=True), "choice", "not true/false"),
    "choice-float": (preference(choice=0.0), "choice", "whole number"),
    "ranking-string": (ranking(ranking="2,0,1"), "ranking", "valid list"),
    "ranking-strings": (ranking(ranking=["2", "0", "1"]), "ranking.0", "valid integer"),
    "ranking-repeats": (ranking(ranking=[0, 0, 1]), "ranking", "exactly once"),
    "ranking-short": (ranking(ranking=[0, 1]), "ranking", "exactly once"),
    "ranking-out-of-range": (ranking(ranking=[0, 1, 5]), "ranking", "exactly once"),
    "edited-number": (edit(edited=5), "edited", "valid string"),
    "edited-unchanged": (edit(edited="Hi!"), "edited", "same as 'response'"),
    # missing required fields, per type
    "type-missing": (without(rating(), "type"), "type", "must be one of"),
    "rating-messages-missing": (without(rating(), "messages"), "messages", "Field required"),
    "rating-response-missing": (without(rating(), "response"), "response", "Field required"),
    "rating-judgement-missing": (without(rating(), "rating"), "rating", "needs 'rating'"),
    "preference-messages-missing": (
        without(preference(), "messages"),
        "messages",
        "Field required",
    ),
    "preference-responses-missing": (
        without(preference(), "responses"),
        "responses",
        "Field required",
    ),
    "preference-choice-missing": (without(preference(), "choice"), "choice", "Field required"),
    "ranking-messages-missing": (without(ranking(), "messages"), "messages", "Field required"),
    "ranking-responses-missing": (without(ranking(), "responses"), "responses", "Field required"),
    "ranking-ranking-missing": (without(ranking(), "ranking"), "ranking", "Field required"),
    "edit-messages-missing": (without(edit(), "messages"), "messages", "Field required"),
    "edit-response-missing": (without(edit(), "response"), "response", "Field required"),
    "edit-edited-missing": (without(edit(), "edited"), "edited", "Field required"),
    # unknown fields
    "unknown-top-level-field": (
        rating(thumbs_up=True),
        "thumbs_up",
        "put extra data in 'metadata'",
    ),
    "field-of-another-type": (rating(choice=0), "choice", "not a field of this event type"),
    "unknown-field-in-a-response": (
        preference(responses=[{"content": "a", "votes": 3}, {"content": "b"}]),
        "responses.0.votes",
        "not a field",
    ),
    # huge strings and lists, over the limits
    "id-over-200": (rating(id="i" * 201), "id", "at most 200 characters"),
    "rater-over-200": (rating(rater="r" * 201), "rater", "at most 200 characters"),
    "model-over-200": (rating(model="m" * 201), "model", "at most 200 characters"),
    "checkpoint-over-200": (rating(checkpoint="c" * 201), "checkpoint", "at most 200 characters"),
    "reason-over-100": (rating(reason="r" * 101), "reason", "at most 100 characters"),
    "licence-over-100": (rating(licence="l" * 101), "licence", "at most 100 characters"),
    "comment-over-10k": (rating(comment="c" * 10_001), "comment", "at most 10000 characters"),
    "response-over-100k": (
        rating(response="r" * (MAX_TEXT + 1)),
        "response",
        "at most 100000 characters",
    ),
    "message-over-100k": (
        rating(messages=[{"role": "user", "content": "m" * (MAX_TEXT + 1)}]),
        "messages.0.content",
        "at most 100000 characters",
    ),
    "edited-over-100k": (edit(edited="e" * (MAX_TEXT + 1)), "edited", "at most 100000 characters"),
    "tag-over-100": (rating(tags=["t" * 101]), "tags.0", "at most 100 characters"),
    "tags-over-50": (rating(tags=[f"t{i}" for i in range(51)]), "tags", "at most 50 items"),
    "messages-over-500": (rating(messages=PROMPT * 501), "messages", "at most 500 items"),
    "responses-over-20": (
        ranking(responses=[{"content": str(i)} for i in range(21)], ranking=list(range(21))),
        "responses",
        "at most 20 items",
    ),
    "metadata-over-16kb": (
        rating(metadata={"blob": "x" * MAX_METADATA_BYTES}),
        "metadata",
        "bytes of JSON",
    ),
    # NUL characters (PostgreSQL text and jsonb cannot hold them)
    "nul-in-comment": (rating(comment="a\x00b"), "comment", "NUL"),
    "nul-in-id": (rating(id="evt\x00"), "id", "NUL"),
    "nul-in-message": (
        rating(messages=[{"role": "user", "content": "hi\x00"}]),
        "messages.0.content",
        "NUL",
    ),
    "nul-in-metadata-value": (rating(metadata={"k": ["ok", "no\x00"]}), "metadata.k.1", "NUL"),
    # nested junk
    "metadata-nested-9-deep": (rating(metadata=nested(9)), "metadata", "nested deeper than 8"),
    "metadata-lists-9-deep": (
        rating(metadata={"k": listed(8)}),
        "metadata",
        "nested deeper than 8",
    ),
    "message-extra-nested-deep": (
        rating(messages=[{"role": "user", "content": "x", "junk": listed(MAX_EVENT_DEPTH)}]),
        "messages",
        f"nested deeper than {MAX_EVENT_DEPTH}",
    ),
    "message-extra-nested-300-deep": (
        rating(messages=[{"role": "user", "content": "x", "junk": listed(300)}]),
        "messages",
        "nested deeper",
    ),
    "content-part-nested-500-deep": (
        rating(messages=[{"role": "user", "content": [{"type": "text", "j": nested(500)}]}]),
        "messages",
        "nested deeper",
    ),
}


@pytest.mark.parametrize(("event", "field", "message"), list(INVALID.values()), ids=list(INVALID))
def test_an_invalid_event_is_400_with_a_field_level_message(
    api: Api, unchanged_event_count: None, event: dict[str, Any], field: str, message: str
) -> None:
    response = api.post(event)

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid"
    fields = _fields(response)
    assert field in fields, fields
    assert any(message in text for text in fields[field]), fields[field]


@pytest.mark.parametrize(("event", "field", "message"), list(INVALID.values()), ids=list(INVALID))
def test_the_same_event_inside_a_batch_is_an_item_error_beside_a_stored_neighbour(
    api: Api, event: dict[str, Any], field: str, message: str
) -> None:
    response = api.post([rating(id="the-good-one"), event])

    assert response.status_code == 207
    good, bad = response.json()["results"]
    assert good["status"] == "accepted"
    assert bad["status"] == "error"
    assert bad["code"] == "invalid"
    assert any(message in text for text in bad["errors"][field])
    assert list(Event.objects.values_list("client_id", flat=True)) == ["the-good-one"]


def test_a_text_that_mentions_the_nul_escape_is_not_refused(api: Api) -> None:
    response = api.post(rating(comment=r"In C, write '\u0000' or '\0' for the NUL character."))

    assert response.status_code == 201
    assert (
        Event.objects.get().payload["comment"]
        == r"In C, write '\u0000' or '\0' for the NUL character."
    )


def test_nested_data_within_the_limits_is_accepted(api: Api) -> None:
    event = rating(
        metadata=nested(8),
        messages=[{"role": "user", "content": "x", "junk": listed(MAX_EVENT_DEPTH - 3)}],
    )

    assert api.post(event).status_code == 201


def test_values_exactly_at_the_limits_are_accepted(api: Api) -> None:
    event = rating(
        id="i" * 200,
        rater="r" * 200,
        model="m" * 200,
        comment="c" * 10_000,
        response="r" * MAX_TEXT,
        tags=[f"t{i}" for i in range(50)],
        reason="r" * 100,
    )

    assert api.post(event).status_code == 201


# --- bodies that are not events at all ---------------------------------------------------------

BAD_BODIES = {
    "empty-body": (b"", 400, "empty"),
    "white-space": (b"  \n ", 400, "not valid JSON"),
    "not-json": (b"{'type': 'rating'}", 400, "not valid JSON"),
    "truncated-json": (b'{"type": "rating", "messages": [', 400, "not valid JSON"),
    "json-string": (b'"a rating"', 400, "JSON object"),
    "json-number": (b"42", 400, "JSON object"),
    "json-null": (b"null", 400, "JSON object"),
    "json-true": (b"true", 400, "JSON object"),
    "empty-array": (b"[]", 400, "empty"),
    "invalid-utf8-byte": (b'{"type": "rating", "comment": "caf\xe9"}', 400, "UTF-8"),
    "invalid-utf8-continuation": (b'{"type": "rating", "comment": "\x80\x80"}', 400, "UTF-8"),
    "utf8-encoded-surrogate": (b'{"type": "rating", "comment": "\xed\xa0\x80"}', 400, "UTF-8"),
    "lone-high-surrogate-escape": (
        b'{"type": "rating", "comment": "\\ud800"}',
        400,
        "lone surrogate",
    ),
    "lone-low-surrogate-escape": (
        b'{"type": "rating", "comment": "\\udc00 x"}',
        400,
        "lone surrogate",
    ),
    "nan": (b'{"type": "rating", "rating": NaN}', 400, "not valid JSON"),
    "nested-past-the-parser": (b"[" * 2000 + b"]" * 2000, 400, "not valid JSON"),
}


@pytest.mark.parametrize(
    ("body", "status", "message"), list(BAD_BODIES.values()), ids=list(BAD_BODIES)
)
def test_a_body_that_is_not_an_event_is_refused_with_a_clear_message(
    api: Api, unchanged_event_count: None, body: bytes, status: int, message: str
) -> None:
    response = api.post(None, raw=body)

    assert response.status_code == status, response.content
    assert message in response.json()["error"]["message"]


@pytest.mark.parametrize("item", [1, "rating", None, True, [], [rating()]], ids=repr)
def test_a_batch_item_that_is_not_an_object_is_an_item_error(
    api: Api, unchanged_event_count: None, item: Any
) -> None:
    response = api.post([item])

    assert response.status_code == 207
    (result,) = response.json()["results"]
    assert result["status"] == "error"
    assert result["errors"] == {"non_field_errors": ["each event must be a JSON object"]}


def test_a_batch_of_1001_events_is_413_and_stores_none(
    api: Api, unchanged_event_count: None
) -> None:
    response = api.post([rating(id=f"e{i}", rater=f"u{i % 10}") for i in range(1001)])

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert "1001 events; at most 1000" in response.json()["error"]["message"]


def test_a_body_over_5_mb_is_413_and_stores_none(api: Api, unchanged_event_count: None) -> None:
    batch = [rating(id=f"e{i}", rater=f"u{i}", response="r" * 60_000) for i in range(90)]
    body = json.dumps(batch).encode()
    assert len(body) > 5 * 1024 * 1024

    response = api.post(None, raw=body)

    assert response.status_code == 413
    assert "over 5 MB" in response.json()["error"]["message"]


def test_a_body_that_declares_more_than_5_mb_is_413_before_it_is_read(
    api: Api, unchanged_event_count: None
) -> None:
    response = api.client.generic(
        "POST",
        "/api/v1/feedback",
        json.dumps(rating()),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api.key}",
        CONTENT_LENGTH=str(6 * 1024 * 1024),
    )

    assert response.status_code == 413


# --- credentials ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Basic dXNlcjpwYXNz",
        "Token sk-whatever",
        "Bearer",
        "Bearer ",
        "bearer-sk-x",
        "Bearer sk-not-a-real-key",
        "Bearer pk-not-a-real-key",
        "Bearer just-garbage",
        "Bearer " + "sk-" + "x" * 300,
    ],
    ids=[
        "no-header",
        "empty-header",
        "basic",
        "token-scheme",
        "bearer-without-key",
        "bearer-blank",
        "no-space",
        "unknown-secret",
        "unknown-publishable",
        "no-prefix",
        "overlong",
    ],
)
def test_missing_or_unknown_credentials_are_401(
    client: Client, src: SourceWithKeys, unchanged_event_count: None, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}

    response = client.post(
        "/api/v1/feedback", json.dumps(rating()), content_type="application/json", **headers
    )

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["message"]


@pytest.mark.parametrize("kind", ["secret", "publishable"])
def test_a_revoked_key_is_401(
    client: Client, make_source: Any, unchanged_event_count: None, kind: str
) -> None:
    web = make_source("web", allowed_origins=["https://chat.example.org"])
    raw = web.secret if kind == "secret" else web.publishable
    for key in web.source.keys.filter(kind=kind):
        api_key_revoke(key=key)

    response = Api(client, raw).post(rating(), origin="https://chat.example.org")

    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_a_key_of_a_deactivated_source_is_401(
    client: Client, make_source: Any, unchanged_event_count: None
) -> None:
    gone = make_source("gone", is_active=False)

    assert Api(client, gone.secret).post(rating()).status_code == 401


@pytest.mark.parametrize(
    "origin",
    [
        None,
        "https://evil.example",
        "https://chat.example.org.evil.example",
        "http://chat.example.org",
        "https://chat.example.org:8443",
        "https://other.example.org",
        "null",
    ],
    ids=[
        "no-origin",
        "foreign",
        "suffix-trick",
        "other-scheme",
        "other-port",
        "another-sources-origin",
        "null",
    ],
)
def test_a_publishable_key_from_an_origin_its_source_does_not_allow_is_403(
    client: Client, make_source: Any, unchanged_event_count: None, origin: str | None
) -> None:
    web = make_source("web", allowed_origins=["https://chat.example.org"])
    make_source("other", allowed_origins=["https://other.example.org"])
    headers = {} if origin is None else {"origin": origin}

    response = Api(client, web.publishable).post(rating(), **headers)

    assert response.status_code == 403
    assert "origin" in response.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/api/v1/feedback", "/api/v1/feedback/{id}"])
def test_a_publishable_key_cannot_read_even_from_an_allowed_origin(
    client: Client, make_source: Any, path: str
) -> None:
    web = make_source("web", allowed_origins=["https://chat.example.org"])
    event_id = Api(client, web.secret).post(rating()).json()["id"]

    response = client.get(
        path.format(id=event_id),
        HTTP_AUTHORIZATION=f"Bearer {web.publishable}",
        HTTP_ORIGIN="https://chat.example.org",
    )

    assert response.status_code == 403
    assert "secret key" in response.json()["error"]["message"]


def test_a_publishable_key_without_an_origin_cannot_read(
    client: Client, src: SourceWithKeys
) -> None:
    response = client.get("/api/v1/feedback", HTTP_AUTHORIZATION=f"Bearer {src.publishable}")

    assert response.status_code == 403


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_methods_other_than_get_and_post_are_405(
    api: Api, src: SourceWithKeys, method: str
) -> None:
    event_id = api.post(rating()).json()["id"]

    for path in ("/api/v1/feedback", f"/api/v1/feedback/{event_id}"):
        response = getattr(api.client, method)(
            path, "{}", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {src.secret}"
        )
        assert response.status_code == 405
    assert Event.objects.count() == 1
