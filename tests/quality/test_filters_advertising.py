"""The advertising, link and contact filter on real spam and real chat text."""

from __future__ import annotations

from collections import Counter

from apps.feedback.redaction import redact_text
from apps.quality.filters import advertising
from tests.quality.conftest import comment_event, hh_turns, run_filter, sms_rows


def test_it_flags_real_sms_spam_that_sends_the_reader_to_a_link_or_a_number() -> None:
    spam = [text for label, text in sms_rows() if label == "spam"]
    results = run_filter(advertising, [comment_event(redact_text(t, Counter())) for t in spam])
    flagged = [t for t, r in zip(spam, results, strict=True) if r.action != "pass"]
    assert len(flagged) >= 20, "prize and premium-number spam should be caught by its cues alone"
    assert all(r.reasons[0].code.startswith("advertising.") for r in results if r.action != "pass")


def test_it_leaves_real_sms_ham_and_real_chat_turns_alone() -> None:
    ham = [text for label, text in sms_rows() if label == "ham"]
    chat = [text for _, text in hh_turns()]
    texts = [redact_text(t, Counter()) for t in ham + chat]
    results = run_filter(advertising, [comment_event(t) for t in texts])
    flagged = [t for t, r in zip(texts, results, strict=True) if r.action != "pass"]
    assert len(flagged) <= 1, flagged


def test_a_comment_selling_something_with_a_shortener_is_rejected() -> None:
    [result] = run_filter(
        advertising,
        [comment_event("Make $500 a day from home!! click here bit.ly/3xQz9 limited time")],
    )
    assert result.action == "reject"
    assert result.reasons[0].code == "advertising.link"
    assert "bit.ly/3xqz9" in result.reasons[0].message


def test_a_channel_plug_and_a_redacted_phone_number_count() -> None:
    texts = [
        "Great answer! Check out my channel for more, link in bio",
        "Call now to claim your prize [PHONE]",
    ]
    results = run_filter(advertising, [comment_event(t) for t in texts])
    assert [r.action for r in results] == ["quarantine", "quarantine"]


def test_one_cue_is_never_enough() -> None:
    texts = [
        "The docs are at https://docs.python.org/3/library/re.html",
        "call me when you are free",
        "I won the bet with my friend thanks to this answer",
        "It said the free tier costs $0, which is right",
    ]
    assert [r.action for r in run_filter(advertising, [comment_event(t) for t in texts])] == [
        "pass"
    ] * 4


def test_an_edit_is_judged_on_what_it_added() -> None:
    original = "Install it with pip; the project lives at https://github.com/psf/requests"
    kept = {
        "type": "edit",
        "messages": [{"role": "user", "content": "how to install requests"}],
        "response": original,
        "edited": original + " — run `pip install requests`.",
    }
    injected = dict(kept, edited=original + " Earn $300 a day, visit www.cash-now.biz and buy now!")
    results = run_filter(advertising, [kept, injected])
    assert [r.action for r in results] == ["pass", "quarantine"]
    assert "edited reply" in results[1].reasons[0].message


def test_model_responses_need_more_than_a_citation() -> None:
    cited = {
        "type": "rating",
        "rating": 1,
        "messages": [{"role": "user", "content": "where do I report fraud?"}],
        "response": "You can report it at https://reportfraud.ftc.gov or call [PHONE].",
    }
    promoted = dict(
        cited,
        response="Best crypto deals! Join our telegram t.me/pumpgroup and earn $1000 today, buy now",
    )
    assert [r.action for r in run_filter(advertising, [cited, promoted])] == ["pass", "quarantine"]
