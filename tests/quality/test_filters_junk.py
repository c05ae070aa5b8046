"""The junk filter: mash and repetition out, abbreviations, laughter and other languages in."""

from __future__ import annotations

from apps.quality.filters import junk
from tests.quality.conftest import comment_event, hh_turns, run_filter, sms_rows


def test_keyboard_mash_and_repeated_characters_are_junk() -> None:
    texts = [
        "asdfghjkl",
        "sdfsdf jkljkl qwerqwer",
        "kjhsdfkjhsdkfjhskdjfh",
        "!!!!!!!!!!!!!!!!!!!!!!!!",
        "lolololololololololol",
        "xcvbnm zxcvbn",
    ]
    results = run_filter(junk, [comment_event(t) for t in texts])
    assert [r.action for r in results] == ["quarantine"] * len(texts)
    assert {r.reasons[0].code for r in results} == {"junk.gibberish", "junk.repetition"}


def test_real_text_messages_and_chat_turns_are_not_junk() -> None:
    texts = [text for _, text in sms_rows()] + [text for _, text in hh_turns()]
    results = run_filter(junk, [comment_event(t) for t in texts])
    flagged = [t for t, r in zip(texts, results, strict=True) if r.action != "pass"]
    assert flagged == []


def test_other_languages_laughter_and_emphasis_pass() -> None:
    texts = [
        "Хороший ответ, спасибо",
        "回答很好，谢谢",
        "Nooo way, that's wrong",
        "hahaha nice",
        "Grrr.",
        "k thx c u l8r",
        "Die Antwort ist falsch",
        "rhythm and strengths",
    ]
    assert [r.action for r in run_filter(junk, [comment_event(t) for t in texts])] == [
        "pass"
    ] * len(texts)


def test_an_empty_edit_and_a_monstrous_comment_are_junk() -> None:
    empty = {
        "type": "edit",
        "messages": [{"role": "user", "content": "hi"}],
        "response": "Hello!",
        "edited": "   ",
    }
    long = comment_event("word " * 2000)
    results = run_filter(junk, [empty, long])
    assert [r.reasons[0].code for r in results] == ["junk.empty_edit", "junk.length"]
