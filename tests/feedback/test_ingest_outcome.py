"""One meaning per word: the ingest answer's `outcome` says what happened to an item (`stored`,
`held`, `duplicate`, `error`), never a quality verdict; the deprecated `status` keeps its old
names for deployed clients (docs/api.md, "The ingest answer: outcome, not verdict")."""

from __future__ import annotations

from typing import Any

from apps.quality.services import verdict_override
from tests.conftest import Api, rating

SPAM = "Buy cheap pills now at https://cheap-pills.example, best prices!!!"


def test_it_answers_stored_not_accepted_for_spam_the_filters_then_reject(api: Api) -> None:
    answer = api.post(rating(id="spam-1", response=SPAM)).json()
    verdict_override(event_id=answer["id"], status="rejected", note="spam")

    detail = api.get(f"/api/v1/feedback/{answer['id']}").json()

    assert answer["outcome"] == "stored"
    assert answer["status"] == "accepted"  # deprecated name, kept for deployed clients
    assert detail["verdict"]["status"] == "rejected"


def test_a_batch_counts_outcomes_and_still_sends_the_deprecated_summary(
    make_source: Any, client: Any
) -> None:
    held = Api(client, make_source("held", hold_for_review=True).secret)
    held.post(rating(id="before"))

    body = held.post([rating(id="new"), rating(id="before"), rating(id="bad", rating=7)]).json()

    assert [item["outcome"] for item in body["results"]] == ["held", "duplicate", "error"]
    assert body["outcomes"] == {"held": 1, "duplicate": 1, "error": 1}
    assert body["summary"] == {"quarantined": 1, "duplicate": 1, "error": 1}


def test_a_retry_of_one_event_answers_the_duplicate_outcome(api: Api) -> None:
    first = api.post(rating(id="once"))
    again = api.post(rating(id="once"))

    assert (first.status_code, first.json()["outcome"]) == (201, "stored")
    assert (again.status_code, again.json()["outcome"]) == (200, "duplicate")
    assert again.json()["id"] == first.json()["id"]
