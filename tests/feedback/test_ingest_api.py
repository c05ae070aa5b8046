"""The ingest and read API's contract: what each field does, what each answer looks like, who
may read what. Bad input has its own matrix (test_bad_input.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import DatabaseError, connection, transaction

from apps.feedback.models import Event
from apps.sources.hashing import ip_hash, rater_hash
from tests.conftest import Api, preference, rating

PROMPT = [{"role": "user", "content": "What is the capital of Australia?"}]


def ranking(**overrides: Any) -> dict[str, Any]:
    event = {
        "type": "ranking",
        "id": "evt-r",
        "rater": "user-1",
        "messages": PROMPT,
        "responses": [
            {"model": "a", "content": "Sydney."},
            {"model": "b", "content": "Canberra."},
            {"model": "c", "content": "Canberra, since 1913."},
        ],
        "ranking": [2, 1, 0],
    }
    event.update(overrides)
    return event


def edit(**overrides: Any) -> dict[str, Any]:
    event = {
        "type": "edit",
        "id": "evt-e",
        "rater": "user-1",
        "model": "llama3.1:8b",
        "messages": PROMPT,
        "response": "Sydney.",
        "edited": "Canberra.",
    }
    event.update(overrides)
    return event


@pytest.fixture
def curator(django_user_model: Any, client: Any) -> Api:
    """A logged-in curator (perm feedback.view_event), reading through the session."""
    user = django_user_model.objects.create_user("curator", password="a-long-password")
    user.user_permissions.add(
        Permission.objects.get(codename="view_event", content_type__app_label="feedback")
    )
    client.force_login(user)
    return Api(client, None)


# --- POST: one event ---------------------------------------------------------------------------


def test_it_stores_one_event_and_answers_201_with_id_client_id_and_status(
    api: Api, src: Any
) -> None:
    response = api.post(rating())

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "client_id", "outcome", "status"}
    assert body["client_id"] == "evt-1"
    assert body["outcome"] == "stored"
    assert body["status"] == "accepted"  # deprecated name of the same outcome
    event = Event.objects.get(pk=body["id"])
    assert (event.source, event.client_id, event.type, event.status) == (
        src.source,
        "evt-1",
        "rating",
        "accepted",
    )


@pytest.mark.parametrize(
    "event",
    [
        rating(),
        rating(
            rating=-1, reason="not_factually_correct", comment="It is Canberra.", tags=["geography"]
        ),
        rating(rating=None, score=7),
        rating(rating=1, score=10),
        preference(choice=0),
        preference(choice=1),
        preference(choice="tie"),
        preference(choice="both_bad"),
        ranking(),
        ranking(responses=[{"content": "x"}, {"content": "y"}], ranking=[1, 0]),
        edit(),
    ],
    ids=[
        "thumb",
        "thumb-with-reason",
        "score",
        "thumb-and-score",
        "choice-0",
        "choice-1",
        "tie",
        "both-bad",
        "ranking-3",
        "ranking-2",
        "edit",
    ],
)
def test_it_accepts_every_documented_shape(api: Api, event: dict[str, Any]) -> None:
    response = api.post(event)

    assert response.status_code == 201, response.content
    assert Event.objects.get(pk=response.json()["id"]).type == event["type"]


def test_it_accepts_openai_message_extras_and_multi_part_content(api: Api) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.org/cat.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "content": "a cat", "tool_call_id": "c1"},
    ]
    response = api.post(rating(messages=messages))

    assert response.status_code == 201, response.content
    assert Event.objects.get(pk=response.json()["id"]).payload["messages"] == messages


def test_an_event_without_an_id_gets_one_made_by_the_server(api: Api) -> None:
    event = rating()
    del event["id"]

    first, second = api.post(event), api.post(event)

    assert first.status_code == second.status_code == 201
    assert first.json()["client_id"].startswith("sinkhole-")
    assert first.json()["client_id"] != second.json()["client_id"]
    assert Event.objects.get(pk=first.json()["id"]).payload["id"] == first.json()["client_id"]


def test_a_source_that_holds_for_review_quarantines_what_it_sends(
    make_source: Any, client: Any
) -> None:
    held = make_source("held", hold_for_review=True)

    response = Api(client, held.secret).post(rating())

    assert response.status_code == 201
    assert response.json()["status"] == "quarantined"
    assert Event.objects.get(pk=response.json()["id"]).status == "quarantined"


# --- the stored row, field by field -------------------------------------------------------------


def test_it_stores_the_event_verbatim_except_for_the_rater(api: Api, src: Any) -> None:
    sent = rating(
        checkpoint="ckpt-7",
        reason="too_long",
        comment="Fine, if long.",
        tags=["geo", "short"],
        metadata={"ui": {"theme": "dark"}, "latency_ms": 812, "flags": [True, None, 1.5]},
        consent=True,
        licence="CC-BY-4.0",
        timestamp="2026-01-31T12:00:00Z",
    )

    event = Event.objects.get(pk=api.post(sent).json()["id"])

    expected = {**sent, "rater": rater_hash(src.source.pk, "user-1")}
    assert event.payload == expected


def test_it_copies_model_checkpoint_consent_licence_and_timestamp_into_columns(api: Api) -> None:
    sent = rating(
        model="qwen2.5:7b",
        checkpoint="ckpt-42",
        consent=False,
        licence="CC0-1.0",
        timestamp="2026-01-31T13:00:00+01:00",
    )

    event = Event.objects.get(pk=api.post(sent).json()["id"])

    assert (event.model, event.checkpoint, event.consent, event.licence) == (
        "qwen2.5:7b",
        "ckpt-42",
        False,
        "CC0-1.0",
    )
    assert event.occurred_at == datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert event.received_at > datetime.now(UTC) - timedelta(minutes=1)


def test_consent_and_licence_default_to_the_sources(make_source: Any, client: Any) -> None:
    shy = make_source("shy", default_consent=False, default_licence="internal-only")

    event = Event.objects.get(pk=Api(client, shy.secret).post(rating()).json()["id"])

    assert (event.consent, event.licence, event.occurred_at) == (False, "internal-only", None)


def test_the_rater_is_stored_only_as_a_keyed_hash(api: Api, src: Any) -> None:
    rater = "alice.rater-7731"

    event = Event.objects.get(pk=api.post(rating(rater=rater)).json()["id"])

    assert event.rater_hash == rater_hash(src.source.pk, rater)
    assert len(event.rater_hash) == 64
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM feedback_event WHERE id = %s", [event.pk])
        row = cursor.fetchone()
    assert not any(rater in str(value) for value in row)


def test_the_same_rater_links_up_within_a_source_but_not_across_sources(
    api: Api, make_source: Any, client: Any
) -> None:
    other = make_source("other")
    first = Event.objects.get(pk=api.post(rating(id="a")).json()["id"])
    second = Event.objects.get(pk=api.post(rating(id="b")).json()["id"])
    elsewhere = Event.objects.get(pk=Api(client, other.secret).post(rating(id="a")).json()["id"])

    assert first.rater_hash == second.rater_hash != elsewhere.rater_hash


def test_it_keeps_a_keyed_hash_of_the_client_address_not_the_address(api: Api) -> None:
    response = api.client.post(
        "/api/v1/feedback",
        json.dumps(rating()),
        content_type="application/json",
        REMOTE_ADDR="203.0.113.9",
        HTTP_AUTHORIZATION=f"Bearer {api.key}",
    )

    event = Event.objects.get(pk=response.json()["id"])
    assert event.ip_hash == ip_hash("203.0.113.9")
    assert "203.0.113.9" not in str(event.payload)


def test_it_records_what_it_redacted(api: Api) -> None:
    sent = rating(comment="Mail jane@example.org or call +1 (555) 123-4567.")

    event = Event.objects.get(pk=api.post(sent).json()["id"])

    assert event.redactions == {"email": 1, "phone": 1}
    assert event.payload["comment"] == "Mail [EMAIL] or call [PHONE]."


def test_the_database_refuses_to_update_a_stored_event(api: Api) -> None:
    event_id = api.post(rating(comment="original")).json()["id"]

    with pytest.raises(DatabaseError), transaction.atomic():
        Event.objects.filter(pk=event_id).update(status="quarantined")
    with pytest.raises(DatabaseError), transaction.atomic():
        Event.objects.filter(pk=event_id).update(payload={"rewritten": True})

    event = Event.objects.get(pk=event_id)
    assert (event.status, event.payload["comment"]) == ("accepted", "original")


@pytest.mark.postgres
def test_on_postgresql_the_database_also_refuses_to_delete_a_stored_event(api: Api) -> None:
    if connection.vendor != "postgresql":
        pytest.skip(
            "DELETE is guarded by a PostgreSQL trigger only (SQLite test teardown deletes rows)"
        )
    event_id = api.post(rating()).json()["id"]

    with pytest.raises(DatabaseError), transaction.atomic():
        Event.objects.filter(pk=event_id).delete()

    assert Event.objects.filter(pk=event_id).exists()


# --- POST: a batch -----------------------------------------------------------------------------


def test_a_batch_answers_207_with_one_result_per_item_in_order(api: Api) -> None:
    api.post(rating(id="seen-before"))
    batch = [
        rating(id="new-1"),
        rating(id="broken", rating=5),
        rating(id="seen-before"),
        preference(id="new-2"),
    ]

    response = api.post(batch)

    assert response.status_code == 207
    results = response.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert [r["status"] for r in results] == ["accepted", "error", "duplicate", "accepted"]
    assert [r["client_id"] for r in results] == ["new-1", "broken", "seen-before", "new-2"]
    assert results[1]["code"] == "invalid"
    assert results[1]["errors"] == {"rating": ["Input should be 1 or -1"]}
    assert "id" not in results[1]
    assert response.json()["summary"] == {"accepted": 2, "error": 1, "duplicate": 1}


def test_a_bad_item_never_spoils_its_neighbours_nor_leaves_a_row(api: Api) -> None:
    batch = [
        rating(id="good-1"),
        rating(id="bad", messages=[]),
        rating(id="good-2"),
        "not an event",
    ]

    results = api.post(batch).json()["results"]

    assert [r["status"] for r in results] == ["accepted", "error", "accepted", "error"]
    assert results[1]["errors"] == {
        "messages": ["List should have at least 1 item after validation, not 0"]
    }
    assert results[3]["errors"] == {"non_field_errors": ["each event must be a JSON object"]}
    assert set(Event.objects.values_list("client_id", flat=True)) == {"good-1", "good-2"}
    assert {results[0]["id"], results[2]["id"]} == set(Event.objects.values_list("id", flat=True))


def test_a_batch_of_one_is_still_answered_as_a_batch(api: Api) -> None:
    response = api.post([rating()])

    assert response.status_code == 207
    assert response.json()["results"][0]["status"] == "accepted"


def test_a_batch_of_exactly_1000_events_is_accepted(api: Api) -> None:
    batch = [rating(id=f"evt-{i}", rater=f"user-{i % 10}") for i in range(1000)]

    response = api.post(batch)

    assert response.status_code == 207
    assert response.json()["summary"] == {"accepted": 1000}
    assert Event.objects.count() == 1000


def test_a_single_invalid_event_answers_400_with_field_messages(api: Api) -> None:
    response = api.post(rating(messages=[{"role": "boss", "content": "hi"}]))

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == ["messages.0.role"]
    assert "'user'" in error["fields"]["messages.0.role"][0]
    assert Event.objects.count() == 0


# --- who may ingest ------------------------------------------------------------------------------


def test_a_curator_session_cannot_ingest(curator: Api) -> None:
    response = curator.post(rating())

    assert response.status_code == 403
    assert Event.objects.count() == 0


def test_a_publishable_key_ingests_from_an_allowed_origin(make_source: Any, client: Any) -> None:
    web = make_source("web", allowed_origins=["https://chat.example.org"])

    response = Api(client, web.publishable).post(rating(), origin="https://chat.example.org")

    assert response.status_code == 201
    assert Event.objects.get(pk=response.json()["id"]).source == web.source


# --- GET: detail ---------------------------------------------------------------------------------


def test_detail_shows_the_event_and_its_normalized_rows(
    api: Api, src: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        event_id = api.post(ranking(checkpoint="ckpt-1")).json()["id"]

    response = api.get(f"/api/v1/feedback/{event_id}")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["client_id"], body["source"], body["type"]) == (
        event_id,
        "evt-r",
        "test-app",
        "ranking",
    )
    assert body["rater"] == rater_hash(src.source.pk, "user-1")
    assert body["payload"]["ranking"] == [2, 1, 0]
    normalized = body["normalized"]
    assert [(i["position"], i["model"], i["checkpoint"]) for i in normalized["interactions"]] == [
        (0, "a", "ckpt-1"),
        (1, "b", "ckpt-1"),
        (2, "c", "ckpt-1"),
    ]
    assert normalized["rating"] is None
    assert sorted((c["a"], c["b"], c["outcome"]) for c in normalized["comparisons"]) == [
        (0, 1, "b"),
        (0, 2, "b"),
        (1, 2, "b"),
    ]


def test_detail_of_a_rating_shows_its_rating_row(
    api: Api, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        event_id = api.post(rating(rating=-1, score=3, reason="wrong")).json()["id"]

    normalized = api.get(f"/api/v1/feedback/{event_id}").json()["normalized"]

    assert normalized["rating"] == {"value": -1, "score": 3, "reason": "wrong"}
    assert normalized["comparisons"] == []
    assert [i["model"] for i in normalized["interactions"]] == ["llama3.1:8b"]


def test_a_key_sees_only_its_own_sources_events(api: Api, make_source: Any, client: Any) -> None:
    other = make_source("other")
    theirs = Api(client, other.secret).post(rating()).json()["id"]
    ours = api.post(rating()).json()["id"]

    assert api.get(f"/api/v1/feedback/{theirs}").status_code == 404
    assert api.get(f"/api/v1/feedback/{ours}").status_code == 200
    assert [e["id"] for e in api.get("/api/v1/feedback").json()["results"]] == [ours]
    assert [e["id"] for e in api.get("/api/v1/feedback", source="other").json()["results"]] == [
        ours
    ]


def test_detail_of_an_event_that_does_not_exist_is_404(api: Api) -> None:
    for event_id in ("424242", "99999999999999999999999"):
        response = api.get(f"/api/v1/feedback/{event_id}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_a_curator_reads_every_source_through_the_session(
    curator: Api, api: Api, make_source: Any, client: Any
) -> None:
    other = make_source("other")
    ours = Api(client, api.key).post(rating()).json()["id"]
    theirs = Api(client, other.secret).post(rating()).json()["id"]

    listed = curator.get("/api/v1/feedback").json()["results"]

    assert [e["id"] for e in listed] == [theirs, ours]
    assert curator.get(f"/api/v1/feedback/{theirs}").status_code == 200
    assert [e["id"] for e in curator.get("/api/v1/feedback", source="other").json()["results"]] == [
        theirs
    ]


def test_a_logged_in_user_without_the_view_permission_cannot_read(
    api: Api, django_user_model: Any, client: Any
) -> None:
    event_id = api.post(rating()).json()["id"]
    client.force_login(django_user_model.objects.create_user("nosy", password="a-long-password"))

    assert client.get("/api/v1/feedback").status_code == 403
    assert client.get(f"/api/v1/feedback/{event_id}").status_code == 403


def test_reading_without_credentials_is_401(api: Api, client: Any) -> None:
    event_id = api.post(rating()).json()["id"]

    assert client.get("/api/v1/feedback").status_code == 401
    assert client.get(f"/api/v1/feedback/{event_id}").status_code == 401


# --- GET: list, filters, pagination --------------------------------------------------------------


@pytest.fixture
def assorted(api: Api, django_capture_on_commit_callbacks: Any) -> dict[str, int]:
    """Five events of different shapes, models, checkpoints and raters; client id → server id."""
    sent = [
        rating(id="r1", rater="ann", model="m1", checkpoint="c1"),
        rating(id="r2", rater="bob", model="m2", rating=-1),
        preference(id="p1", rater="ann", model="m1"),
        ranking(id="k1", rater="cyd", checkpoint="c1"),
        edit(id="e1", rater="bob", model="m2"),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        results = api.post(sent).json()["results"]
    return {r["client_id"]: r["id"] for r in results}


def _listed(api: Api, **params: Any) -> list[str]:
    response = api.get("/api/v1/feedback", **params)
    assert response.status_code == 200, response.content
    return [event["client_id"] for event in response.json()["results"]]


def test_the_list_is_newest_first_with_the_event_fields(api: Api, assorted: dict[str, int]) -> None:
    response = api.get("/api/v1/feedback")

    results = response.json()["results"]
    assert [e["client_id"] for e in results] == ["e1", "k1", "p1", "r2", "r1"]
    assert set(results[0]) == {
        "id",
        "client_id",
        "source",
        "type",
        "status",
        "model",
        "checkpoint",
        "rater",
        "consent",
        "licence",
        "redactions",
        "occurred_at",
        "received_at",
        "payload",
        "unreadable",
        "supersedes",
        "superseded_by",
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"type": "rating"}, ["r2", "r1"]),
        ({"type": "preference"}, ["p1"]),
        ({"type": "ranking"}, ["k1"]),
        ({"type": "edit"}, ["e1"]),
        ({"status": "accepted"}, ["e1", "k1", "p1", "r2", "r1"]),
        ({"status": "quarantined"}, []),
        ({"model": "m1"}, ["p1", "r1"]),
        ({"model": "m2", "type": "edit"}, ["e1"]),
        ({"checkpoint": "c1"}, ["k1", "r1"]),
        ({"rater": "ann"}, ["p1", "r1"]),
        ({"rater": "bob"}, ["e1", "r2"]),
        ({"rater": "nobody"}, []),
        ({"since": "2000-01-01T00:00:00Z"}, ["e1", "k1", "p1", "r2", "r1"]),
        ({"until": "2000-01-01T00:00:00Z"}, []),
        ({"since": "2999-01-01T00:00:00Z"}, []),
    ],
)
def test_the_list_filters(
    api: Api, assorted: dict[str, int], params: dict[str, str], expected: list[str]
) -> None:
    assert _listed(api, **params) == expected


def test_since_and_until_bracket_the_received_time(api: Api) -> None:
    for client_id in ("first", "second", "third"):
        api.post(rating(id=client_id))
    second = Event.objects.get(client_id="second").received_at

    assert _listed(api, since=second.isoformat()) == ["third", "second"]
    assert _listed(api, until=second.isoformat()) == ["first"]
    assert _listed(
        api, since=second.isoformat(), until=(second + timedelta(microseconds=1)).isoformat()
    ) == ["second"]


def test_a_curator_filters_by_rater_within_a_named_source(
    curator: Api, assorted: dict[str, int]
) -> None:
    assert _listed(curator, source="test-app", rater="ann") == ["p1", "r1"]
    assert _listed(curator, source="no-such-source") == []


def test_cursor_pagination_walks_every_event_once(api: Api, assorted: dict[str, int]) -> None:
    seen: list[str] = []
    page = api.get("/api/v1/feedback", limit=2).json()
    while True:
        assert len(page["results"]) <= 2
        seen += [e["client_id"] for e in page["results"]]
        if not page["next"]:
            break
        page = api.client.get(page["next"], HTTP_AUTHORIZATION=f"Bearer {api.key}").json()

    assert seen == ["e1", "k1", "p1", "r2", "r1"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"type": "thumbs"}, "type"),
        ({"status": "deleted"}, "status"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-45T00:00:00Z"}, "until"),
        ({"model": "m" * 201}, "model"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
def test_bad_filter_values_are_400_with_the_field_named(
    api: Api, params: dict[str, str], field: str
) -> None:
    response = api.get("/api/v1/feedback", **params)

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]


def test_a_curator_filtering_by_rater_must_name_the_source(
    curator: Api, assorted: dict[str, int]
) -> None:
    response = curator.get("/api/v1/feedback", rater="ann")

    assert response.status_code == 400
    assert "source" in response.json()["error"]["fields"]["rater"][0]
