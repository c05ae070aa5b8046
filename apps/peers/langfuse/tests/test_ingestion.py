"""`POST /api/public/ingestion`: Langfuse's batch of tracing events. Scores (`score-create`)
become ratings; traces and generations give them their text, whichever comes first in the
batch, or in an earlier one; the answer is Langfuse's 207 with successes and errors."""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any

import pytest

from apps.feedback.models import Event
from apps.feedback.schema import validate_event
from apps.peers.conftest import Langfuse
from apps.peers.models import LangfuseObservation, LangfuseScore
from apps.peers.services import connectors_run_due
from apps.sources.hashing import rater_hash

STAMP = "2022-01-01T00:00:00.000Z"


def envelope(event_id: str, kind: str, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": event_id, "timestamp": STAMP, "type": kind, "body": body, **extra}


def trace(trace_id: str = "trace-1", **body: Any) -> dict[str, Any]:
    """A trace-create as Langfuse's API definition shows it (fern ingestion.yml example)."""
    fields = {
        "id": trace_id,
        "timestamp": STAMP,
        "environment": "production",
        "name": "My Trace",
        "userId": "1234-5678-90ab-cdef",
        "input": "What is the capital of Australia?",
        "output": "Canberra.",
        "sessionId": "1234-5678-90ab-cdef",
        "release": "1.0.0",
        "version": "1.0.0",
        "metadata": "My metadata",
        "tags": ["tag1", "tag2"],
        "public": True,
    }
    fields.update(body)
    return envelope(f"evt-{trace_id}", "trace-create", fields)


def score(event_id: str = "evt-score", **body: Any) -> dict[str, Any]:
    fields = {
        "id": "score-1",
        "traceId": "trace-1",
        "name": "user-feedback",
        "value": 1,
        "dataType": "BOOLEAN",
        "environment": "default",
    }
    fields.update(body)
    return envelope(event_id, "score-create", fields)


def payloads() -> list[dict[str, Any]]:
    return [event.payload for event in Event.objects.order_by("id")]


def test_langfuses_documented_batch_answers_207_with_one_success_per_event(
    langfuse: Langfuse,
) -> None:
    # The three request examples of Langfuse's ingestion API definition, in one batch.
    batch = [
        trace("abcdef-1234-5678-90ab"),
        envelope(
            "span-evt",
            "span-create",
            {
                "id": "abcdef-1234-5678-90ab",
                "traceId": "1234-5678-90ab-cdef",
                "startTime": STAMP,
                "environment": "test",
            },
        ),
        envelope(
            "score-evt",
            "score-create",
            {
                "id": "abcdef-1234-5678-90ab",
                "traceId": "1234-5678-90ab-cdef",
                "name": "My Score",
                "value": 0.9,
                "environment": "default",
            },
        ),
    ]

    response = langfuse.ingest(batch)

    assert response.status_code == 207
    assert response.json() == {
        "successes": [
            {"id": "evt-abcdef-1234-5678-90ab", "status": 201},
            {"id": "span-evt", "status": 201},
            {"id": "score-evt", "status": 201},
        ],
        "errors": [],
    }
    (event,) = payloads()
    assert (
        event["score"] == 9 and event["metadata"]["langfuse"]["score_id"] == "abcdef-1234-5678-90ab"
    )


def test_bad_events_answer_in_errors_and_never_spoil_their_neighbours(langfuse: Langfuse) -> None:
    batch = [
        score("good", id="s-good"),
        score("unreadable", id="s-bad", name="latency", value=1234.5, dataType="NUMERIC"),
        {"id": "no-body", "timestamp": STAMP, "type": "score-create"},
        envelope("alien", "dataset-create", {}),
        "not an object",
    ]

    body = langfuse.ingest(batch).json()

    assert body["successes"] == [{"id": "good", "status": 201}]
    assert [(e["id"], e["status"]) for e in body["errors"]] == [
        ("unreadable", 400),
        ("no-body", 400),
        ("alien", 400),
        ("batch[4]", 400),
    ]
    assert all(set(e) == {"id", "status", "message", "error"} for e in body["errors"])
    assert "cannot read the NUMERIC value" in body["errors"][0]["message"]
    assert "unsupported event type 'dataset-create'" in body["errors"][2]["message"]
    assert [p["metadata"]["langfuse"]["score_id"] for p in payloads()] == ["s-good"]


def test_a_score_in_the_same_batch_as_its_trace_carries_the_trace_text_whatever_the_order(
    langfuse: Langfuse, src
) -> None:
    langfuse.ingest([score(), trace()])  # the score comes first

    (event,) = payloads()
    assert event["messages"] == [{"role": "user", "content": "What is the capital of Australia?"}]
    assert event["response"] == "Canberra."
    assert "placeholders" not in event["metadata"]
    assert event["timestamp"] == STAMP
    # The trace's userId is the rater, kept only as a keyed hash (and hashed again by ingest).
    stored = Event.objects.get()
    assert stored.rater_hash == rater_hash(
        src.source.pk, rater_hash(src.source.pk, "1234-5678-90ab-cdef")
    )
    assert "1234-5678-90ab-cdef" not in json.dumps(stored.payload)
    assert LangfuseScore.objects.get().with_text is True
    assert validate_event(event)[1] == {}


def test_a_later_score_uses_the_text_and_model_of_an_earlier_batchs_trace_and_generation(
    langfuse: Langfuse,
) -> None:
    conversation = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Capital of Australia?"},
    ]
    langfuse.ingest(
        [
            trace(input={"query": "Capital of Australia?"}, output={"answer": "Canberra."}),
            envelope(
                "g1",
                "generation-create",
                {
                    "id": "gen-1",
                    "traceId": "trace-1",
                    "name": "llm",
                    "model": "llama3.1:8b",
                    "input": conversation,
                },
            ),
            envelope(
                "g2",
                "generation-update",
                {
                    "id": "gen-1",
                    "traceId": "trace-1",
                    "output": {"role": "assistant", "content": "Canberra."},
                },
            ),
        ]
    )

    langfuse.ingest([score(value=0)])

    (event,) = payloads()
    assert event["rating"] == -1
    assert event["model"] == "llama3.1:8b"
    assert event["messages"] == [{"role": "user", "content": "Capital of Australia?"}]
    assert event["response"] == "Canberra."


def test_a_score_on_an_observation_is_about_that_generations_text(langfuse: Langfuse) -> None:
    langfuse.ingest(
        [
            trace(),
            envelope(
                "g1",
                "generation-create",
                {
                    "id": "gen-2",
                    "traceId": "trace-1",
                    "model": "qwen2.5:7b",
                    "input": [{"role": "human", "content": "And of Canada?"}],
                    "output": {
                        "choices": [{"message": {"role": "assistant", "content": "Ottawa."}}]
                    },
                },
            ),
        ]
    )

    langfuse.ingest([score(observationId="gen-2")])

    (event,) = payloads()
    assert (event["messages"], event["response"], event["model"]) == (
        [{"role": "user", "content": "And of Canada?"}],
        "Ottawa.",
        "qwen2.5:7b",
    )
    assert event["metadata"]["langfuse"]["observation_id"] == "gen-2"


def test_a_retried_batch_stores_nothing_new_even_for_scores_without_their_own_id(
    langfuse: Langfuse,
) -> None:
    batch = [trace(), score("evt-a", id=None), score("evt-b", id="score-2", value=0)]
    batch[1]["body"].pop("id")

    first = langfuse.ingest(batch).json()
    again = langfuse.ingest(batch).json()

    assert first == again and again["errors"] == []
    assert Event.objects.count() == 2
    assert set(LangfuseScore.objects.values_list("score_id", flat=True)) == {"evt-a", "score-2"}


def test_trace_text_is_redacted_before_it_is_kept(langfuse: Langfuse) -> None:
    langfuse.ingest([trace(input="Mail me at jane.doe@example.org please", output="Done.")])

    kept = LangfuseObservation.objects.get()
    assert kept.messages == [{"role": "user", "content": "Mail me at [EMAIL] please"}]


def test_trace_texts_are_forgotten_after_their_keeping_time(langfuse: Langfuse) -> None:
    langfuse.ingest([trace()])
    LangfuseObservation.objects.update(updated_at="2000-01-01T00:00:00Z")

    connectors_run_due()

    assert LangfuseObservation.objects.count() == 0


def test_an_empty_or_missing_batch_is_a_400_and_a_batch_over_the_limit_a_413(
    langfuse: Langfuse, settings
) -> None:
    assert langfuse.post("ingestion", {"metadata": {}}).status_code == 400
    settings.INGEST_MAX_BATCH_EVENTS = 2
    assert langfuse.ingest([score("a"), score("b"), score("c")]).status_code == 413
    assert Event.objects.count() == 0


def test_otel_trace_exports_are_acknowledged_so_clients_that_send_them_do_not_fail(
    langfuse: Langfuse, client
) -> None:
    response = client.post(
        "/api/public/otel/v1/traces",
        b"\x0a\x00",
        content_type="application/x-protobuf",
        HTTP_AUTHORIZATION=langfuse.authorization,
    )

    assert response.status_code == 200 and response.content == b""
    assert (
        client.post(
            "/api/public/otel/v1/traces", b"", content_type="application/x-protobuf"
        ).status_code
        == 401
    )


@pytest.mark.django_db(transaction=True)
def test_a_score_sent_over_real_http_with_basic_auth_is_stored(live_server, make_source) -> None:
    keys = make_source("http-app")
    token = base64.b64encode(f"{keys.publishable}:{keys.secret}".encode()).decode()
    request = urllib.request.Request(  # noqa: S310 - the test server
        f"{live_server.url}/api/public/scores",
        data=json.dumps(
            {"traceId": "t-http", "name": "user-feedback", "value": 1, "dataType": "BOOLEAN"}
        ).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        method="POST",
    )

    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the test server
        answer = json.loads(response.read())

    assert response.status == 200
    assert Event.objects.get().payload["metadata"]["langfuse"]["score_id"] == answer["id"]


def otlp_export(trace_id: str) -> dict[str, Any]:
    """An OTLP/JSON trace export as Langfuse's JS SDK (LibreChat's agents) sends it: a root span
    with the trace's input and output, and a generation span, attributes JSON-serialized."""

    def attribute(key: str, value: Any) -> dict[str, Any]:
        text = value if isinstance(value, str) else json.dumps(value)
        return {"key": key, "value": {"stringValue": text}}

    return {
        "resourceSpans": [
            {
                "resource": {"attributes": []},
                "scopeSpans": [
                    {
                        "scope": {"name": "langfuse-sdk", "version": "4.2.0"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": "a1b2c3d4e5f60718",
                                "name": "AgentRun",
                                "attributes": [
                                    attribute(
                                        "langfuse.trace.input",
                                        [{"role": "user", "content": "Name a prime."}],
                                    ),
                                    attribute(
                                        "langfuse.trace.output",
                                        {"role": "assistant", "content": "7."},
                                    ),
                                    attribute("user.id", "librechat-user-9"),
                                ],
                            },
                            {
                                "traceId": trace_id,
                                "spanId": "0f1e2d3c4b5a6978",
                                "name": "llm",
                                "attributes": [
                                    attribute("langfuse.observation.type", "generation"),
                                    attribute("langfuse.observation.model.name", "gpt-4o-mini"),
                                    attribute(
                                        "langfuse.observation.input",
                                        [{"role": "user", "content": "Name a prime."}],
                                    ),
                                    attribute(
                                        "langfuse.observation.output",
                                        {"role": "assistant", "content": "7."},
                                    ),
                                ],
                            },
                        ],
                    }
                ],
            }
        ]
    }


def test_an_otlp_json_trace_export_gives_a_later_score_its_text_and_model(
    langfuse: Langfuse, client
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = client.post(
        "/api/public/otel/v1/traces",
        json.dumps(otlp_export(trace_id)),
        content_type="application/json",
        HTTP_AUTHORIZATION=langfuse.authorization,
    )
    assert response.status_code == 200

    langfuse.score(
        {
            "id": f"feedback-{trace_id}",
            "traceId": trace_id,
            "name": "user-feedback",
            "value": 1,
            "dataType": "BOOLEAN",
        }
    )

    (event,) = payloads()
    assert (event["messages"], event["response"], event["model"]) == (
        [{"role": "user", "content": "Name a prime."}],
        "7.",
        "gpt-4o-mini",
    )
    assert "placeholders" not in event["metadata"] and "rater" in event


def test_a_changed_score_supersedes_the_last_value_unless_its_rater_became_known_since(
    langfuse: Langfuse,
) -> None:
    langfuse.ingest([score("evt-1", traceId="trace-late")])  # its trace has not come yet
    langfuse.ingest([trace("trace-late")])  # now it has, naming the user
    langfuse.ingest([score("evt-2", traceId="trace-late", value=0)])
    langfuse.ingest([score("evt-3", traceId="trace-late", value=1)])

    first, second, third = Event.objects.order_by("id")
    assert (first.rater_hash, second.rater_hash != "") == ("", True)
    # The first value had no rater: the second is stored unlinked (a rater revises only its
    # own events), and the third revises the second.
    assert (second.supersedes_id, third.supersedes_id) == (None, second.pk)
