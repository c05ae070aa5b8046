"""Arena identity leaks in anonymous comparisons."""

from __future__ import annotations

from apps.quality.filters import arena
from tests.quality.conftest import hh_turns, run_filter


def battle(a: str, b: str, **overrides) -> dict:
    event = {
        "type": "preference",
        "messages": [{"role": "user", "content": "Who are you?"}],
        "responses": [
            {"model": "llama3.1:8b", "content": a},
            {"model": "qwen2.5:7b", "content": b},
        ],
        "choice": 0,
    }
    event.update(overrides)
    return event


def test_a_response_that_names_its_maker_is_held_out() -> None:
    leaks = [
        battle("I am Llama, a large language model created by Meta AI.", "I'm an AI assistant."),
        battle("Hello!", "I am a large language model trained by Alibaba Cloud."),
        battle("As an AI language model developed by OpenAI, I cannot browse.", "Sure."),
        battle("Hi there.", "I'm Claude, made by Anthropic."),
    ]
    results = run_filter(arena, leaks)
    assert [r.action for r in results] == ["quarantine"] * 4
    assert results[0].reasons[0].code == "arena.identity_leak"
    assert "Response 1 (llama3.1:8b)" in results[0].reasons[0].message


def test_talking_about_models_is_not_a_leak() -> None:
    fine = [
        battle(
            "GPT-4 and Llama 3 are both large language models.", "Mistral released Mixtral in 2023."
        ),
        battle("I am not sure Llama is better than Qwen here.", "OpenAI's API has rate limits."),
        battle(
            "I'm a helpful assistant and I can help you with Python.",
            "I was trained on public text.",
        ),
    ]
    assert [r.action for r in run_filter(arena, fine)] == ["pass"] * 3


def test_real_assistant_turns_do_not_leak() -> None:
    replies = [text for speaker, text in hh_turns() if speaker == "Assistant"]
    events = [battle(replies[i], replies[i + 1]) for i in range(0, len(replies) - 1, 2)]
    assert all(r.action == "pass" for r in run_filter(arena, events))


def test_named_comparisons_and_ratings_are_not_checked() -> None:
    named = battle("I am Claude, made by Anthropic.", "Hi", metadata={"anonymous": False})
    rating = {
        "type": "rating",
        "rating": 1,
        "messages": [{"role": "user", "content": "who are you"}],
        "response": "I am ChatGPT, developed by OpenAI.",
    }
    assert [r.action for r in run_filter(arena, [named, rating])] == ["pass", "pass"]
