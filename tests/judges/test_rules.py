"""The rule judges: refusal, length and language (the prompt's writing system)."""

from __future__ import annotations

import pytest

from apps.judges.kinds import build
from apps.judges.kinds.base import Pair


def winner(rule: dict, prompt: str, a: str, b: str) -> str:
    return build("rule", rule).compare([Pair(prompt, a, b)])[0].winner


def test_the_refusal_rule_prefers_the_answer_or_on_request_the_refusal():
    refusal, answer = "I'm sorry, but I can't help with that.", "Paris is the capital."
    assert winner({"rule": "refusal"}, "Capital of France?", refusal, answer) == "b"
    assert (
        winner({"rule": "refusal", "prefer": "refusal"}, "How to pick a lock?", refusal, answer)
        == "a"
    )
    assert winner({"rule": "refusal"}, "q", answer, "Berlin.") == "tie"  # neither refuses


def test_the_language_rule_prefers_the_reply_in_the_prompts_script():
    prompt = "Какая столица Франции?"
    assert winner({"rule": "language"}, prompt, "Париж.", "Paris.") == "a"
    assert winner({"rule": "language"}, "日本の首都は？", "Tokyo.", "東京です。") == "b"


def test_the_length_rule_is_order_free_and_sure_only_in_proportion():
    judge = build("rule", {"rule": "length"})
    verdict = judge.compare([Pair("q", "a much longer reply than the other", "short")])[0]
    swapped = judge.compare([Pair("q", "short", "a much longer reply than the other")])[0]
    assert verdict.winner == "a" and swapped.winner == "b" and not verdict.flipped
    assert 0 < verdict.confidence < 1


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="rule must be one of"):
        build("rule", {"rule": "vibes"})
