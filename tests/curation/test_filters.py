"""The inbox's filters: each key narrows as a user expects, bad values answer field errors,
full text works on PostgreSQL (tsvector) and SQLite (substring)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.utils import timezone

from apps.curation import services
from apps.curation.filters import clean_filters, events_filtered, filters_as_params
from tests.conftest import preference, rating

pytestmark = pytest.mark.django_db

SPAM = (
    "WIN a FREE iPhone now!!! Click http://win-prizes.example to claim your prize, txt WIN to 80082"
)


def ids(params):
    return sorted(events_filtered(clean_filters(params)).values_list("id", flat=True))


@pytest.fixture
def corpus(add_events, curator):
    up = add_events(
        rating(model="llama3", checkpoint="ck-1", rating=1, tags=["code", "python"],
               response="Use a list comprehension to square the numbers."),
    )[0]  # fmt: skip
    down = add_events(
        rating(model="mistral", rating=-1, response="The moon is made of cheese.",
               comment="factually wrong about astronomy"),
        source="other-app",
    )[0]  # fmt: skip
    scored = add_events(rating(model="llama3", rating=None, score=8, response="Paris."))[0]
    pref = add_events(preference())[0]
    spam = add_events(rating(comment=SPAM))[0]
    unjudged = add_events(rating(response="Bonjour, café crème."), judge=False)[0]
    return {"up": up, "down": down, "scored": scored, "pref": pref, "spam": spam,
            "unjudged": unjudged, "curator": curator}  # fmt: skip


def test_each_key_narrows(corpus):
    c = corpus
    assert ids({"source": "other-app"}) == [c["down"].id]
    assert ids({"model": "mistral"}) == [c["down"].id]
    assert ids({"checkpoint": "ck-1"}) == [c["up"].id]
    assert ids({"type": "preference"}) == [c["pref"].id]
    assert ids({"rating": "up"}) == sorted([c["up"].id, c["spam"].id, c["unjudged"].id])
    assert ids({"rating": "down"}) == [c["down"].id]
    assert ids({"rating": "7-10"}) == [c["scored"].id]
    assert ids({"rating": "9"}) == []
    assert ids({"status": "unjudged"}) == [c["unjudged"].id]
    assert c["spam"].id in ids({"status": "quarantined"}) + ids({"status": "rejected"})
    assert c["spam"].id not in ids({"status": "accepted"})
    assert c["spam"].id in ids({"spam_min": "0.5"})
    assert c["spam"].id not in ids({"spam_max": "0.4"})
    assert ids({"tags": "code"}) == [c["up"].id]
    assert ids({"tags": "code,python"}) == [c["up"].id]
    assert ids({"tags": "code,nope"}) == []


def test_curator_tags_and_decisions_filter(corpus):
    c, curator = corpus, corpus["curator"]
    services.decision_tag(event_id=c["down"].id, user=curator, tag="astronomy")
    assert ids({"tags": "astronomy"}) == [c["down"].id]
    services.decision_accept(event_id=c["spam"].id, user=curator)
    services.decision_reject(event_id=c["up"].id, user=curator, reason="low_quality")
    second = services.decision_accept(event_id=c["up"].id, user=curator)
    assert ids({"decision": "accepted"}) == sorted([c["spam"].id, c["up"].id])
    assert ids({"decision": "rejected"}) == []
    services.decision_undo(decision_id=second.id, user=curator)
    assert ids({"decision": "rejected"}) == [c["up"].id]
    assert c["pref"].id in ids({"decision": "undecided"})
    assert c["up"].id not in ids({"decision": "undecided"})


def test_dates_are_received_at_and_until_includes_its_day(corpus):
    today = timezone.localdate().isoformat()
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    assert len(ids({"since": today, "until": today})) == 6
    assert ids({"since": tomorrow}) == []


def test_full_text_finds_words_of_every_text(corpus):
    c = corpus
    assert ids({"q": "comprehension"}) == [c["up"].id]  # the response
    assert ids({"q": "astronomy"}) == [c["down"].id]  # the comment
    assert ids({"q": "capital Australia"}) == sorted(
        [c["up"].id, c["down"].id, c["scored"].id, c["spam"].id, c["unjudged"].id]
    )  # the prompt
    assert ids({"q": "café"}) == [c["unjudged"].id]  # non-ASCII
    assert ids({"q": "zebra"}) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"type": "poll"}, "type"),
        ({"rating": "sideways"}, "rating"),
        ({"rating": "0-11"}, "rating"),
        ({"status": "maybe"}, "status"),
        ({"spam_min": "high"}, "spam_min"),
        ({"spam_max": "1.5"}, "spam_max"),
        ({"spam_min": "0.8", "spam_max": "0.2"}, "spam_min"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2025-02-01", "until": "2025-01-01"}, "since"),
        ({"q": "x" * 500}, "q"),
        ({"decision": "perhaps"}, "decision"),
        ({"tags": ",".join(f"t{i}" for i in range(20))}, "tags"),
        ({"model": {"x": 1}}, "model"),
    ],
)
def test_bad_values_answer_a_field_error(params, field):
    with pytest.raises(ValidationError) as err:
        clean_filters(params)
    assert field in err.value.message_dict


def test_query_dicts_and_round_trips():
    query = QueryDict("source=a&tags=x&tags=y,z&rating=7-9&since=2025-01-02&page=3&q=")
    clean = clean_filters(query)
    assert clean["tags"] == ["x", "y", "z"] and clean["rating"] == [7, 9] and "q" not in clean
    assert clean_filters(filters_as_params(clean)) == clean
