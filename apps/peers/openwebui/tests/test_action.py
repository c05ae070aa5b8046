"""apps/peers/openwebui/plugin/sinkhole_feedback_action.py, the Open WebUI Action function: the event
it builds from what Open WebUI hands an action, checked against Sinkhole's schema, and the whole
action sending a rating to a live Sinkhole over HTTP, without a running Open WebUI."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from apps.feedback.models import Event
from apps.feedback.schema import validate_event
from apps.peers.testing import PEERS, imports_of, load

action_module = load("openwebui/plugin/sinkhole_feedback_action.py", "sinkhole_feedback_action")


def chat_body(**extra: Any) -> dict[str, Any]:
    """The body Open WebUI's chat_action gives an action: model, messages, id (the message the
    button is under), chat_id, session_id."""
    body = {
        "model": "llama3.1:8b",
        "messages": [
            {
                "id": "m1",
                "role": "user",
                "content": "What does HTTP status 418 mean?",
                "timestamp": 1731974400,
            },
            {
                "id": "m2",
                "role": "assistant",
                "content": "418 I'm a teapot, from RFC 2324.",
                "model": "llama3.1:8b",
            },
            {"id": "m3", "role": "user", "content": [{"type": "text", "text": "And 419?"}]},
            {"id": "m4", "role": "assistant", "content": "419 is not a standard status."},
        ],
        "id": "m2",
        "chat_id": "0c9e8d7f-6a5b-4c3d-2e1f-0a9b8c7d6e5f",
        "session_id": "sess-1",
    }
    body.update(extra)
    return body


USER = {"id": "b2d9e7a0-5c41", "name": "Ada", "email": "ada@example.org", "role": "user"}


def test_the_file_is_plain_python_with_the_action_structure_open_webui_loads() -> None:
    assert imports_of(PEERS / "openwebui" / "plugin" / "sinkhole_feedback_action.py") <= {
        "__future__",
        "asyncio",
        "base64",
        "json",
        "urllib",
        "typing",
        "pydantic",
    }
    action = action_module.Action()
    assert set(action.valves.model_dump()) >= {"sinkhole_url", "sinkhole_key"}
    assert [a["id"] for a in action.actions] == ["thumbs_up", "thumbs_down"]
    assert all(a["icon_url"].startswith("data:image/svg+xml;base64,") for a in action.actions)
    assert asyncio.iscoroutinefunction(action.action)
    assert action_module.__doc__.lstrip().startswith("title: Sinkhole feedback")


def test_the_event_for_a_thumb_under_an_earlier_reply_rates_that_reply_and_passes_the_schema() -> (
    None
):
    event = action_module.build_event(chat_body(), -1, user=USER, comment="Wrong RFC")

    assert event == {
        "type": "rating",
        "id": "openwebui-action:m2:down",
        "messages": [{"role": "user", "content": "What does HTTP status 418 mean?"}],
        "response": "418 I'm a teapot, from RFC 2324.",
        "rating": -1,
        "model": "llama3.1:8b",
        "rater": "b2d9e7a0-5c41",
        "comment": "Wrong RFC",
        "metadata": {
            "chat_id": "0c9e8d7f-6a5b-4c3d-2e1f-0a9b8c7d6e5f",
            "message_id": "m2",
            "via": "open-webui action",
        },
    }
    assert validate_event(event)[1] == {}


def test_without_a_message_id_the_last_reply_is_rated_with_the_whole_conversation_before_it() -> (
    None
):
    event = action_module.build_event(chat_body(id=None), 1, user=USER, send_user_id=False)

    assert [m["content"] for m in event["messages"]] == [
        "What does HTTP status 418 mean?",
        "418 I'm a teapot, from RFC 2324.",
        "And 419?",
    ]
    assert event["response"] == "419 is not a standard status." and "rater" not in event
    assert validate_event(event)[1] == {}


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"id": "m1", "role": "user", "content": "Hi"}],
        [{"id": "m2", "role": "assistant", "content": "Hello"}],
    ],
)
def test_a_body_with_nothing_to_rate_is_refused_before_anything_is_sent(messages) -> None:
    with pytest.raises(ValueError):
        action_module.build_event(chat_body(messages=messages, id=None), 1)


@pytest.mark.django_db(transaction=True)
def test_pressing_the_buttons_sends_the_rating_to_a_live_sinkhole(live_server, make_source) -> None:
    keys = make_source("owui-action")
    action = action_module.Action()
    action.valves.sinkhole_url, action.valves.sinkhole_key = live_server.url, keys.secret
    notices: list[dict[str, Any]] = []

    async def emit(message: dict[str, Any]) -> None:
        notices.append(message)

    async def press(button: str) -> Any:
        return await action.action(
            chat_body(), __user__=USER, __event_emitter__=emit, __id__=button
        )

    first = asyncio.run(press("thumbs_up"))
    again = asyncio.run(press("thumbs_up"))
    changed = asyncio.run(press("thumbs_down"))

    assert (
        first["sinkhole"]["status"],
        again["sinkhole"]["status"],
        changed["sinkhole"]["status"],
    ) == ("accepted", "duplicate", "accepted")
    assert [e.payload["rating"] for e in Event.objects.order_by("id")] == [1, -1]
    assert notices[-1] == {
        "type": "notification",
        "data": {"type": "success", "content": "Thanks for the feedback!"},
    }


@pytest.mark.django_db(transaction=True)
def test_a_wrong_key_or_an_unknown_button_is_told_to_the_user_not_raised(live_server) -> None:
    action = action_module.Action()
    action.valves.sinkhole_url, action.valves.sinkhole_key = live_server.url, "sk-wrong"
    notices: list[dict[str, Any]] = []

    async def emit(message: dict[str, Any]) -> None:
        notices.append(message)

    assert (
        asyncio.run(
            action.action(chat_body(), __user__=USER, __event_emitter__=emit, __id__="thumbs_up")
        )
        is None
    )
    assert (
        asyncio.run(action.action(chat_body(), __event_emitter__=emit, __id__="sideways")) is None
    )

    assert "Sinkhole answered 401" in notices[0]["data"]["content"]
    assert notices[1]["data"] == {"type": "error", "content": "Unknown Sinkhole action 'sideways'."}
    assert Event.objects.count() == 0
