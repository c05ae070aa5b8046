"""`POST /api/public/scores` and friends, with the payloads Langfuse documents and the ones
LibreChat sends: how each score becomes a rating, idempotency by score id, changes and
deletions, finding scores by trace id, and Langfuse-style Basic auth."""

from __future__ import annotations

import pytest

from apps.feedback.models import Event, Rating
from apps.feedback.schema import validate_event
from apps.peers.conftest import Langfuse, basic
from apps.peers.models import LangfuseScore
from apps.sources.services import api_key_revoke

TRACE = "cdef-1234-5678-90ab"


def events() -> list[dict]:
    return [event.payload for event in Event.objects.order_by("id")]


def librechat_feedback(value: int, **extra: object) -> dict:
    """What LibreChat's feedback route posts (api/server/services/Langfuse.js)."""
    body = {
        "id": f"feedback-{TRACE}",
        "traceId": TRACE,
        "name": "user-feedback",
        "value": value,
        "dataType": "BOOLEAN",
        "comment": "inaccurate — it made up the RFC number",
        "metadata": {"rating": "thumbsDown" if value == 0 else "thumbsUp", "tag": "inaccurate"},
    }
    body.update(extra)
    return body


# --- the mapping, on Langfuse's documented examples -------------------------------------------

# The CreateScoreRequest examples in Langfuse's API definition (fern/apis/server/definition/
# score.yml), and what each becomes.
DOCUMENTED = [
    ({"name": "novelty", "value": 0.9, "traceId": TRACE}, {"score": 9}),
    ({"name": "consistency", "value": 1.2, "dataType": "NUMERIC", "traceId": TRACE}, {"score": 1}),
    (
        {
            "name": "accuracy",
            "value": 0.9,
            "dataType": "NUMERIC",
            "configId": "9203-4567-89ab-cdef",
            "traceId": TRACE,
            "environment": "test",
        },
        {"score": 9},
    ),
    (
        {"name": "toxicity", "value": "not toxic", "traceId": TRACE, "environment": "production"},
        {"rating": 1, "reason": "not toxic"},
    ),
    (
        {
            "name": "correctness",
            "value": "partially correct",
            "dataType": "CATEGORICAL",
            "configId": "1234-5678-90ab-cdef",
            "traceId": TRACE,
        },
        {"score": 5, "reason": "partially correct"},
    ),
    # hallucination = 0 means no hallucination: a good reply.
    ({"name": "hallucination", "value": 0, "dataType": "BOOLEAN", "traceId": TRACE}, {"rating": 1}),
    (
        {
            "name": "helpfulness",
            "value": 1,
            "dataType": "BOOLEAN",
            "configId": "1234-5678-90ab-cdef",
            "traceId": TRACE,
        },
        {"rating": 1},
    ),
]


@pytest.mark.parametrize(("body", "expected"), DOCUMENTED, ids=[b["name"] for b, _ in DOCUMENTED])
def test_each_documented_langfuse_score_becomes_the_rating_the_mapping_table_promises(
    langfuse: Langfuse, body: dict, expected: dict
) -> None:
    response = langfuse.score(body)

    assert response.status_code == 200, response.content
    assert set(response.json()) == {"id"}
    (event,) = events()
    assert {key: event.get(key) for key in expected} == expected
    assert ("rating" in event) != ("score" in event)
    assert event["metadata"]["langfuse"]["name"] == body["name"]
    assert event["metadata"]["langfuse"]["value"] == body["value"]
    assert validate_event(event)[1] == {}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"name": "user-feedback", "value": 1}, {"rating": 1}),
        ({"name": "user-feedback", "value": 0}, {"rating": -1}),
        ({"name": "user-feedback", "value": -1}, {"rating": -1}),
        ({"name": "stars", "value": 4, "metadata": {"min": 1, "max": 5}}, {"score": 8}),
        ({"name": "stars", "value": 1, "metadata": {"min": 1, "max": 5}}, {"score": 1}),
        ({"name": "quality", "value": 7}, {"score": 7}),
        ({"name": "toxicity", "value": 0.8}, {"score": 3}),
        ({"name": "thumbs_down", "value": 1, "dataType": "BOOLEAN"}, {"rating": -1}),
        ({"name": "no_hallucination", "value": 1, "dataType": "BOOLEAN"}, {"rating": 1}),
        ({"name": "hallucination", "value": "yes"}, {"rating": -1, "reason": "yes"}),
        ({"name": "verdict", "value": "Not relevant"}, {"rating": -1, "reason": "Not relevant"}),
        ({"name": "vote", "value": "👍"}, {"rating": 1}),
    ],
)
def test_numbers_categories_and_defect_names_map_as_documented(
    langfuse: Langfuse, body: dict, expected: dict
) -> None:
    response = langfuse.score({"traceId": TRACE, **body})

    assert response.status_code == 200, response.content
    (event,) = events()
    assert {key: event.get(key) for key in expected} == expected


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"name": "latency", "value": 1234.5}, "value", "cannot read the NUMERIC value 1234.5"),
        ({"name": "mood", "value": "purple"}, "value", "does not know the category 'purple'"),
        ({"name": "ok", "value": 2, "dataType": "BOOLEAN"}, "value", "must be 1 or 0"),
        (
            {"name": "note", "value": "see ticket", "dataType": "TEXT"},
            "value",
            "carries no judgement",
        ),
        (
            {"name": "stars", "value": 9, "metadata": {"min": 1, "max": 5}},
            "value",
            "outside the scale",
        ),
        ({"name": "orphan", "value": 1}, "traceId", "needs the traceId"),
        ({"value": 1, "traceId": TRACE}, "name", "Field required"),
    ],
)
def test_a_score_sinkhole_cannot_read_is_refused_with_a_reason_and_nothing_is_stored(
    langfuse: Langfuse, body: dict, field: str, words: str
) -> None:
    response = langfuse.score({"traceId": TRACE, **body} if field != "traceId" else body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert words in " ".join(error["fields"][field])
    assert Event.objects.count() == 0
    assert LangfuseScore.objects.count() == 0


# --- what the event holds ---------------------------------------------------------------------


def test_a_score_on_a_trace_sinkhole_has_no_text_for_holds_placeholders_named_in_metadata(
    langfuse: Langfuse,
) -> None:
    langfuse.score(librechat_feedback(0))

    (event,) = events()
    assert event["type"] == "rating" and event["rating"] == -1
    assert event["messages"] == [
        {"role": "user", "content": f"[Langfuse trace {TRACE}: prompt not sent to Sinkhole]"}
    ]
    assert event["response"] == f"[Langfuse trace {TRACE}: reply not sent to Sinkhole]"
    assert event["metadata"]["placeholders"] == ["messages", "response"]
    assert event["comment"] == "inaccurate — it made up the RFC number"
    assert event["reason"] == "inaccurate"
    assert event["metadata"]["langfuse"] == {
        "score_id": f"feedback-{TRACE}",
        "trace_id": TRACE,
        "name": "user-feedback",
        "data_type": "BOOLEAN",
        "value": 0,
        "metadata": {"rating": "thumbsDown", "tag": "inaccurate"},
    }
    assert LangfuseScore.objects.get().with_text is False


def test_the_rating_is_derived_like_any_other_and_attached_to_its_interaction(
    langfuse: Langfuse, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        langfuse.score(librechat_feedback(1))

    rating = Rating.objects.select_related("interaction", "event").get()
    assert rating.value == 1
    assert rating.event.client_id == f"langfuse:score:feedback-{TRACE}"


def test_a_score_without_an_id_gets_one_from_the_server(langfuse: Langfuse) -> None:
    response = langfuse.score({"traceId": TRACE, "name": "user-feedback", "value": 1})

    score_id = response.json()["id"]
    assert score_id and LangfuseScore.objects.get().score_id == score_id


# --- idempotency, changes, deletions ----------------------------------------------------------


def test_sending_the_same_score_again_stores_nothing_and_answers_the_same_id(
    langfuse: Langfuse,
) -> None:
    first = langfuse.score(librechat_feedback(1))
    again = langfuse.score(librechat_feedback(1))

    assert first.json() == again.json() == {"id": f"feedback-{TRACE}"}
    assert Event.objects.count() == 1


def test_a_changed_score_with_the_same_id_is_a_new_event_and_the_score_points_at_it(
    langfuse: Langfuse,
) -> None:
    langfuse.score(librechat_feedback(1))
    langfuse.score(librechat_feedback(0))  # the user flipped the thumb
    langfuse.score(librechat_feedback(1))  # and back

    assert [(e.client_id, e.payload["rating"]) for e in Event.objects.order_by("id")] == [
        (f"langfuse:score:feedback-{TRACE}", 1),
        (f"langfuse:score:feedback-{TRACE}:r2", -1),
        (f"langfuse:score:feedback-{TRACE}:r3", 1),
    ]
    score = LangfuseScore.objects.get()
    assert (score.revision, score.event.client_id, score.string_value) == (
        3,
        f"langfuse:score:feedback-{TRACE}:r3",
        "",
    )


def test_each_changed_value_of_a_score_supersedes_the_previous_one(langfuse: Langfuse) -> None:
    langfuse.score(librechat_feedback(1))
    langfuse.score(librechat_feedback(0))
    langfuse.score(librechat_feedback(0))  # a retry of the same value: nothing new
    langfuse.score(librechat_feedback(1))

    r1, r2, r3 = Event.objects.order_by("id")
    assert (r1.supersedes_id, r2.supersedes_id, r3.supersedes_id) == (None, r1.pk, r2.pk)
    assert r3.payload["supersedes"] == f"langfuse:score:feedback-{TRACE}:r2"
    latest = Event.objects.filter(superseded_by__isnull=True)
    assert list(latest.values_list("pk", flat=True)) == [r3.pk]


def test_deleting_a_score_retracts_it_keeps_its_events_and_a_second_delete_is_404(
    langfuse: Langfuse,
) -> None:
    langfuse.score(librechat_feedback(1))

    assert langfuse.delete(f"scores/feedback-{TRACE}").status_code == 204
    assert langfuse.delete(f"scores/feedback-{TRACE}").status_code == 404
    assert langfuse.get(f"scores/feedback-{TRACE}").status_code == 404
    assert Event.objects.count() == 1
    assert LangfuseScore.objects.get().retracted_at is not None

    # Clicking the same thumb again after clearing it is a judgement again.
    langfuse.score(librechat_feedback(1))
    assert Event.objects.count() == 2
    assert langfuse.get(f"scores/feedback-{TRACE}").status_code == 200


# --- finding scores ---------------------------------------------------------------------------


def test_scores_are_found_by_trace_id_in_langfuse_shape_with_their_sinkhole_event(
    langfuse: Langfuse,
) -> None:
    langfuse.score(librechat_feedback(1))
    langfuse.score({"id": "s-other", "traceId": "another-trace", "name": "quality", "value": 0.5})

    page = langfuse.get("scores", traceId=TRACE).json()

    assert page["meta"] == {"page": 1, "limit": 50, "totalItems": 1, "totalPages": 1}
    (score,) = page["data"]
    event = Event.objects.get(client_id=f"langfuse:score:feedback-{TRACE}")
    assert score["id"] == f"feedback-{TRACE}" and score["traceId"] == TRACE
    assert (score["name"], score["value"], score["dataType"]) == ("user-feedback", 1.0, "BOOLEAN")
    assert score["sinkhole"]["event_id"] == event.id
    assert langfuse.get("scores/s-other").json()["stringValue"] is None


def test_a_source_never_sees_another_sources_scores(
    langfuse: Langfuse, make_source, client
) -> None:
    langfuse.score(librechat_feedback(1))
    other = Langfuse(client, make_source("other-app"))

    assert other.get("scores", traceId=TRACE).json()["data"] == []
    assert other.get(f"scores/feedback-{TRACE}").status_code == 404


# --- authentication ---------------------------------------------------------------------------


def test_no_credentials_get_a_401_that_asks_for_basic_auth(langfuse: Langfuse) -> None:
    response = langfuse.score(librechat_feedback(1), authorization="")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic realm=")
    assert Event.objects.count() == 0


@pytest.mark.parametrize("case", ["bearer", "swapped", "secret twice", "two sources", "garbage"])
def test_credentials_that_are_not_one_sources_public_and_secret_key_are_refused(
    langfuse: Langfuse, make_source, case: str
) -> None:
    keys, other = langfuse.keys, make_source("other-app")
    authorization = {
        "bearer": f"Bearer {keys.secret}",
        "swapped": basic(keys.secret, keys.publishable),
        "secret twice": basic(keys.secret, keys.secret),
        "two sources": basic(keys.publishable, other.secret),
        "garbage": "Basic not-base64!",
    }[case]

    response = langfuse.score(librechat_feedback(1), authorization=authorization)

    assert response.status_code == 401
    assert Event.objects.count() == 0


def test_a_revoked_secret_key_or_an_inactive_source_is_refused(langfuse: Langfuse) -> None:
    secret = langfuse.keys.source.keys.get(kind="secret")
    api_key_revoke(key=secret)
    assert langfuse.score(librechat_feedback(1)).status_code == 401


def test_an_inactive_source_is_refused(langfuse: Langfuse) -> None:
    source = langfuse.keys.source
    source.is_active = False
    source.save(update_fields=["is_active"])

    assert langfuse.score(librechat_feedback(1)).status_code == 401


def test_a_key_over_its_rate_limit_gets_429_with_retry_after_and_nothing_stored(
    make_source, client
) -> None:
    langfuse = Langfuse(client, make_source("tiny", rate_limit_per_minute=1))
    assert langfuse.score(librechat_feedback(1)).status_code == 200

    response = langfuse.score({"traceId": "t2", "name": "user-feedback", "value": 1})

    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert Event.objects.count() == 1


def test_the_projects_call_that_clients_use_to_check_their_keys_names_the_source(
    langfuse: Langfuse,
) -> None:
    response = langfuse.get("projects")

    assert response.status_code == 200
    assert response.json() == {
        "data": [
            {
                "id": "test-app",
                "name": "test-app",
                "organization": {"id": "sinkhole", "name": "Sinkhole"},
                "metadata": {},
            }
        ]
    }
    assert langfuse.get("projects", authorization="").status_code == 401
