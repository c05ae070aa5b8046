"""Langfuse scores on answers of Sinkhole's own gateway count for the checkpoint that answered.

The gateway hands every answer a Langfuse trace id (`sinkhole.trace_id`, `X-Sinkhole-Trace-Id`:
the interaction id's hex digits, or the trace the client named with `X-Sinkhole-Trace-Id` or a
W3C `traceparent`). A score sent on that trace, as the Langfuse SDKs send one (5.x: a JSON array
on /api/public/scores; 2.x-4.x: `score-create` in an ingestion batch, next to the generation the
Langfuse OpenAI wrapper records with the answer's `model`), becomes a rating attached to that
answer: its checkpoint, its interaction id, its prompt and reply; experiment results and the
thumbs leaderboard count it for that checkpoint."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.test import Client

from apps.evaluation.selectors import BattleFilter
from apps.evaluation.thumbs import thumbs_rates
from apps.feedback.models import Event
from apps.peers.conftest import Langfuse
from apps.serving import selectors
from apps.serving.models import ServedAnswer
from tests.serving.test_experiments import make_experiment

pytestmark = pytest.mark.django_db

PROMPT = "Is the sky blue?"


def chat(client: Client, key: str, model: str, **headers: str) -> Any:
    return client.post(
        "/v1/chat/completions",
        json.dumps(
            {
                "model": model,
                "user": "alice",
                "messages": [{"role": "user", "content": PROMPT}],
                "max_tokens": 8,
            }
        ),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
        **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()},
    )


def thumbs_of(checkpoint: str) -> int:
    series = thumbs_rates(BattleFilter(), checkpoint=checkpoint)["series"]
    return sum(entry["total"]["n"] for entry in series)


def test_the_gateway_gives_each_answer_a_langfuse_trace_id(registry, src, client) -> None:
    response = chat(client, src.secret, "production")

    body = response.json()
    interaction = body["sinkhole"]["interaction_id"]
    assert body["sinkhole"]["trace_id"] == interaction.removeprefix("chatcmpl-")
    assert response["X-Sinkhole-Trace-Id"] == body["sinkhole"]["trace_id"]
    assert len(body["sinkhole"]["trace_id"]) == 32  # a valid W3C / Langfuse 3.x trace id


def test_the_gateway_keeps_the_trace_the_client_named(registry, src, client) -> None:
    hex_trace = uuid.uuid4().hex
    by_traceparent = chat(
        client, src.secret, "production", traceparent=f"00-{hex_trace}-00f067aa0ba902b7-01"
    )
    by_header = chat(client, src.secret, "production", **{"X-Sinkhole-Trace-Id": "lf-v2-trace-7"})
    bad = chat(client, src.secret, "production", **{"X-Sinkhole-Trace-Id": "no spaces, please"})

    assert by_traceparent.json()["sinkhole"]["trace_id"] == hex_trace
    assert by_header.json()["sinkhole"]["trace_id"] == "lf-v2-trace-7"
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "X-Sinkhole-Trace-Id"
    assert ServedAnswer.objects.filter(trace_id="lf-v2-trace-7").count() == 1


def test_a_langfuse_5_score_on_an_answers_trace_counts_for_the_arm_that_answered(
    registry, src, client, langfuse_client, django_capture_on_commit_callbacks
) -> None:
    experiment = make_experiment(registry, name="lf-ab")
    answer = chat(client, src.secret, "production").json()
    trace_id, checkpoint = answer["sinkhole"]["trace_id"], answer["sinkhole"]["checkpoint"]

    # Langfuse 5.x posts scores as a JSON array; the user's thumbs-up on the chat turn.
    score = {"id": str(uuid.uuid4()), "traceId": trace_id, "name": "user-feedback"}
    with django_capture_on_commit_callbacks(execute=True):
        sent = langfuse_client.post("scores", [{**score, "value": 1, "dataType": "BOOLEAN"}])

    assert sent.status_code < 300, sent.content
    event = Event.objects.get()
    assert event.checkpoint == checkpoint
    assert event.payload["interaction_id"] == answer["sinkhole"]["interaction_id"]
    assert event.payload["messages"] == [{"role": "user", "content": PROMPT}]
    assert event.payload["response"] == answer["choices"][0]["message"]["content"]
    results = selectors.experiment_results(experiment)
    counted = {arm["checkpoint"]: arm["thumbs"]["n"] for arm in results["arms"]}
    assert counted[checkpoint] == 1
    assert sum(counted.values()) == 1
    assert thumbs_of(checkpoint) == 1


def test_a_score_in_the_trace_the_openai_wrapper_recorded_counts_for_the_checkpoint(
    registry, src, client, langfuse_client, django_capture_on_commit_callbacks
) -> None:
    # A Langfuse 2.x-4.x app: it makes the trace id, passes it to the OpenAI wrapper
    # (`trace_id=`) and to the gateway (`X-Sinkhole-Trace-Id`), then scores the trace.
    trace_id = str(uuid.uuid4())
    answer = chat(client, src.secret, "tiny-lora", **{"X-Sinkhole-Trace-Id": trace_id}).json()
    reply = answer["choices"][0]["message"]["content"]
    now = "2026-12-07T06:00:00.000Z"
    generation = {
        "id": str(uuid.uuid4()),
        "traceId": trace_id,
        "name": "OpenAI-generation",
        "model": answer["model"],  # the wrapper records the answer's `model`
        "input": [{"role": "user", "content": PROMPT}],
        "output": {"role": "assistant", "content": reply},
    }
    batch = [
        {"id": "e1", "type": "trace-create", "timestamp": now, "body": {"id": trace_id}},
        {"id": "e2", "type": "generation-create", "timestamp": now, "body": generation},
        {
            "id": "e3",
            "type": "score-create",
            "timestamp": now,
            "body": {"id": "s1", "traceId": trace_id, "name": "thumbs", "value": 0},
        },
    ]
    with django_capture_on_commit_callbacks(execute=True):
        sent = langfuse_client.post("ingestion", {"batch": batch})

    assert not sent.json()["errors"], sent.json()
    event = Event.objects.get()
    assert (event.checkpoint, event.model) == ("tiny-lora", "tiny-lora")
    assert event.payload["rating"] == -1
    assert thumbs_of("tiny-lora") == 1


def test_another_sources_score_gets_the_checkpoint_but_not_the_answers_text(
    registry, src, make_source, client, django_capture_on_commit_callbacks
) -> None:
    answer = chat(client, src.secret, "production").json()
    other = Langfuse(client, make_source("other-app"))
    score = {"id": "x1", "traceId": answer["sinkhole"]["interaction_id"], "name": "thumbs"}
    with django_capture_on_commit_callbacks(execute=True):
        other.post("scores", {**score, "value": 1})

    event = Event.objects.get()
    assert event.checkpoint == answer["sinkhole"]["checkpoint"]
    assert PROMPT not in json.dumps(event.payload)


def test_a_score_on_an_unknown_trace_stays_unattached(src, langfuse_client) -> None:
    langfuse_client.post(
        "scores", {"id": "s", "traceId": uuid.uuid4().hex, "name": "t", "value": 1}
    )

    assert Event.objects.get().checkpoint == ""


@pytest.fixture
def langfuse_client(src: Any, client: Client) -> Any:
    return Langfuse(client, src)
