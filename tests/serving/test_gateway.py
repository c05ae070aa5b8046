"""The OpenAI-compatible gateway: answers (whole and streamed) from the built-in engine and from
an upstream server, the ids and checkpoint they carry, what is recorded, and feedback that
quotes an answer's id landing on exactly that checkpoint."""

from __future__ import annotations

import json

import pytest

from apps.feedback.models import Event, Rating
from apps.serving.models import ServedAnswer
from tests.conftest import preference, rating
from tests.serving.conftest import sse_events

pytestmark = pytest.mark.django_db


def test_it_answers_through_an_alias_with_the_checkpoint_and_an_interaction_id(gateway, registry):
    response = gateway.chat("production", user="alice")

    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "base-tiny"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["sinkhole"] == {
        "interaction_id": body["id"],
        "trace_id": body["id"].removeprefix("chatcmpl-"),
        "checkpoint": "base-tiny",
        "model": "tiny",
        "alias": "production",
        "experiment": None,
        "arm": None,
    }
    assert response["X-Sinkhole-Interaction"] == body["id"]
    assert response["X-Sinkhole-Checkpoint"] == "base-tiny"
    assert body["usage"]["completion_tokens"] <= 8

    answer = ServedAnswer.objects.get(interaction_id=body["id"])
    assert answer.checkpoint == registry.base
    assert answer.alias == "production"
    assert answer.requested_model == "production"
    assert answer.response == body["choices"][0]["message"]["content"]
    assert answer.messages == [{"role": "user", "content": "Is the sky blue?"}]
    assert answer.backend == "builtin"
    assert answer.rater_hash and answer.latency_ms is not None
    assert answer.prompt_tokens > 0


def test_it_streams_server_sent_events_from_an_adapter_and_records_the_whole_answer(
    gateway, registry
):
    response = gateway.chat(
        "tiny-lora", stream=True, stream_options={"include_usage": True}, max_tokens=6
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[0]["sinkhole"]["checkpoint"] == "tiny-lora"
    assert chunks[-2]["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[-1]["usage"]["completion_tokens"] <= 6
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])

    answer = ServedAnswer.objects.get(interaction_id=chunks[0]["id"])
    assert response["X-Sinkhole-Interaction"] == answer.interaction_id
    assert answer.checkpoint == registry.adapter
    assert answer.stream is True
    assert answer.response == text
    assert answer.finish_reason in ("stop", "length")


def test_the_adapter_and_the_base_answer_differently(gateway, registry):
    prompt = "Write a short poem about the sea."
    base = gateway.chat("base-tiny", prompt, max_tokens=12).json()
    adapted = gateway.chat("tiny-lora", prompt, max_tokens=12).json()
    assert base["choices"][0]["message"]["content"] != adapted["choices"][0]["message"]["content"]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}, 404, "model"),
        ({"model": "production", "messages": []}, 400, "messages"),
        (
            {"model": "production", "messages": [{"role": "robot", "content": "hi"}]},
            400,
            "messages.0.role",
        ),
        (
            {
                "model": "production",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 10**6,
            },
            400,
            "max_tokens",
        ),
        (
            {"model": "production", "messages": [{"role": "user", "content": "hi"}], "n": 2},
            400,
            "n",
        ),
        ({"messages": [{"role": "user", "content": "hi"}]}, 400, "model"),
    ],
)
def test_bad_requests_get_openai_errors_and_record_nothing(
    client, src, registry, body, status, param
):
    response = client.post(
        "/v1/chat/completions",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {src.secret}",
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert error["param"] == param
    assert error["message"] and error["type"] == "invalid_request_error"
    assert not ServedAnswer.objects.exists()


def test_it_wants_a_secret_key(client, src, gateway, registry):
    assert gateway.chat("production", key="sk-wrong").status_code == 401
    response = client.post("/v1/chat/completions", "{}", content_type="application/json")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert gateway.chat("production", key=src.publishable).status_code == 403


def test_a_retired_checkpoint_is_not_served(gateway, registry):
    registry.adapter.status = "retired"
    registry.adapter.save()
    response = gateway.chat("tiny-lora")
    assert response.status_code == 404
    assert "retired" in response.json()["error"]["message"]


def test_models_lists_aliases_checkpoints_experiments_and_base_models(client, src, registry):
    response = client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {src.secret}")
    ids = [m["id"] for m in response.json()["data"]]
    # The registered base models last (served as they are; see test_base_model.py).
    assert ids == ["production", "base-tiny", "tiny-lora", "smollm2-135m", "tiny"]


# ---- upstream ----------------------------------------------------------------------------------


def test_it_forwards_to_an_upstream_server_with_the_adapter_name(gateway, registry, fake_openai):
    body = gateway.chat("tiny-lora").json()

    assert body["choices"][0]["message"]["content"] == "upstream says hi"
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert body["sinkhole"]["checkpoint"] == "tiny-lora"
    sent = fake_openai.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "tiny-lora"
    assert sent["body"]["max_tokens"] == 8
    assert sent["auth"] == "Bearer upstream-secret"
    answer = ServedAnswer.objects.get(interaction_id=body["id"])
    assert answer.backend == "upstream"
    assert answer.response == "upstream says hi"


def test_it_passes_an_upstream_stream_through_piece_by_piece(gateway, registry, fake_openai):
    events = sse_events(gateway.chat("production", stream=True))

    pieces = [c["choices"][0]["delta"].get("content") for c in events[1:-2]]
    assert pieces == ["upstream ", "says ", "hi"]
    assert (
        fake_openai.requests[-1]["body"]["model"] == registry.base.base_model.model_id
    )  # a base: its id
    answer = ServedAnswer.objects.get(interaction_id=events[0]["id"])
    assert answer.response == "upstream says hi"
    assert answer.completion_tokens == 3


def test_an_upstream_error_is_a_502_in_openai_shape(gateway, registry, fake_openai):
    registry.adapter.name = "missing"
    registry.adapter.save()
    response = gateway.chat("missing")
    assert response.status_code == 502
    assert "does not exist" in response.json()["error"]["message"]
    assert ServedAnswer.objects.get().error


# ---- feedback that quotes the answer -----------------------------------------------------------


def test_feedback_with_the_interaction_id_lands_on_the_checkpoint_that_answered(
    api, gateway, registry, django_capture_on_commit_callbacks
):
    answer = gateway.chat("tiny-lora").json()
    event = rating(
        id="thumb-1",
        model="gpt-4o",
        checkpoint="something-else",
        interaction_id=answer["id"],
        response=answer["choices"][0]["message"]["content"] or "…",
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(event)

    assert response.status_code == 201, response.content
    stored = Event.objects.get(client_id="thumb-1")
    assert (stored.model, stored.checkpoint) == ("tiny-lora", "tiny-lora")
    assert stored.payload["interaction_id"] == answer["id"]
    assert Rating.objects.get(event=stored).checkpoint == "tiny-lora"


def test_a_preference_between_two_answers_attaches_each_side(
    api, gateway, registry, django_capture_on_commit_callbacks
):
    one = gateway.chat("base-tiny").json()["id"]
    two = gateway.chat("tiny-lora").json()["id"]
    event = preference(
        id="pref-1",
        responses=[
            {"content": "a", "interaction_id": one},
            {"content": "b", "interaction_id": two, "model": "lies"},
        ],
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(event).status_code == 201
    stored = Event.objects.get(client_id="pref-1")
    assert [(r["model"], r["checkpoint"]) for r in stored.payload["responses"]] == [
        ("tiny", "base-tiny"),
        ("tiny-lora", "tiny-lora"),
    ]
    assert sorted(stored.interactions.values_list("checkpoint", flat=True)) == [
        "base-tiny",
        "tiny-lora",
    ]


def test_an_unknown_interaction_id_is_a_field_error_and_stores_nothing(api, registry):
    response = api.post([rating(id="ok"), rating(id="bad", interaction_id="chatcmpl-nope")])

    assert response.status_code == 207
    results = response.json()["results"]
    assert results[0]["status"] == "accepted"
    assert results[1]["status"] == "error"
    assert "interaction_id" in results[1]["errors"]
    assert not Event.objects.filter(client_id="bad").exists()
