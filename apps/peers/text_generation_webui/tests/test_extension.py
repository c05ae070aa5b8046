"""apps/peers/text_generation_webui/plugin/sinkhole/script.py, the text-generation-webui extension:
its hooks and params as the web UI expects them, the event it builds from a chat history
(checked against Sinkhole's schema), and a rating sent to a live Sinkhole over HTTP."""

from __future__ import annotations

import pytest

from apps.feedback.models import Event
from apps.feedback.schema import validate_event
from apps.peers.testing import PEERS, imports_of, load

script = load("text_generation_webui/plugin/sinkhole/script.py", "sinkhole_tgwebui_script")

HISTORY = {
    "internal": [
        ["<|BEGIN-VISIBLE-CHAT|>", "How can I help you today?"],
        ["What is the capital of Australia?", "Sydney."],
        ["Are you sure?", "Sorry: it is Canberra."],
    ],
    "visible": [],
}


def test_the_extension_has_the_hooks_and_params_text_generation_webui_looks_for() -> None:
    assert {"display_name", "is_tab"} <= set(script.params)
    for hook in ("ui", "input_modifier", "output_modifier"):
        assert callable(getattr(script, hook))
    # gradio and the web UI's modules are imported inside ui() only.
    assert imports_of(PEERS / "text_generation_webui" / "plugin" / "sinkhole" / "script.py") - {
        "gradio",
        "modules",
    } <= {"__future__", "hashlib", "json", "os", "urllib", "typing"}
    assert script.output_modifier("text", {}, is_chat=True) == "text"


def test_the_event_rates_the_last_reply_with_the_turns_before_it_and_passes_the_schema() -> None:
    event = script.build_event(
        HISTORY,
        -1,
        model="llama-3.1-8b-instruct.Q4_K_M.gguf",
        chat_id="20240501-10-00-00",
        rater="alice",
        comment="first answer was wrong",
    )

    assert event["messages"] == [
        {"role": "assistant", "content": "How can I help you today?"},
        {"role": "user", "content": "What is the capital of Australia?"},
        {"role": "assistant", "content": "Sydney."},
        {"role": "user", "content": "Are you sure?"},
    ]
    assert (event["response"], event["rating"], event["model"], event["rater"]) == (
        "Sorry: it is Canberra.",
        -1,
        "llama-3.1-8b-instruct.Q4_K_M.gguf",
        "alice",
    )
    assert event["metadata"] == {
        "via": "text-generation-webui",
        "turn": 2,
        "chat_id": "20240501-10-00-00",
    }
    assert validate_event(event)[1] == {}


def test_the_same_thumb_on_the_same_reply_has_the_same_id_and_a_changed_thumb_another() -> None:
    up, up_again, down = (script.build_event(HISTORY, r, chat_id="c") for r in (1, 1, -1))

    assert up["id"] == up_again["id"] != down["id"]


def test_an_empty_chat_has_nothing_to_rate() -> None:
    with pytest.raises(ValueError, match="no reply to rate"):
        script.build_event({"internal": []}, 1)


@pytest.mark.django_db(transaction=True)
def test_a_button_press_sends_the_rating_to_a_live_sinkhole(
    live_server, make_source, monkeypatch
) -> None:
    keys = make_source("tgwebui")
    monkeypatch.setitem(script.params, "sinkhole_url", live_server.url)
    monkeypatch.setitem(script.params, "sinkhole_key", keys.secret)

    assert script.rate(HISTORY, 1, "great", "chat-1") == "Thanks! Feedback sent."
    assert script.rate(HISTORY, 1, "great", "chat-1") == "Already sent; thanks."

    stored = Event.objects.get()
    assert (stored.payload["rating"], stored.payload["comment"]) == (1, "great")


@pytest.mark.django_db(transaction=True)
def test_without_a_history_component_the_last_exchange_seen_by_the_hooks_is_rated(
    live_server, make_source, monkeypatch
) -> None:
    monkeypatch.setitem(script.params, "sinkhole_url", live_server.url)
    monkeypatch.setitem(script.params, "sinkhole_key", make_source("tgwebui-old").secret)
    monkeypatch.setattr(
        script, "_last", {"user": None, "reply": None, "history": None, "chat_id": ""}
    )
    script.input_modifier("Name a prime.", {}, is_chat=True)
    script.output_modifier("7.", {}, is_chat=True)

    assert script.rate(None, 1) == "Thanks! Feedback sent."
    assert Event.objects.get().payload["messages"] == [{"role": "user", "content": "Name a prime."}]


def test_a_missing_key_is_said_in_the_ui_not_raised(monkeypatch) -> None:
    monkeypatch.setitem(script.params, "sinkhole_key", "")

    assert "set sinkhole-sinkhole_key" in script.rate(HISTORY, 1)
