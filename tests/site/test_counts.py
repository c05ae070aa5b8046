"""One truth per number: on the same data the home page, the dashboard and the leaderboard agree,
and each number says what it counts (events received, events by verdict, events waiting for a
verdict, battles and thumbs as the leaderboard counts them)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from apps.feedback.models import Event
from apps.feedback.services.ingest import feedback_ingest
from apps.feedback.services.normalize import feedback_events_normalize
from apps.quality.services import quality_events_judge, verdict_override
from tests.conftest import preference, rating

pytestmark = pytest.mark.django_db


def numbers(html: str) -> dict[str, tuple[int, str]]:
    """Each labelled card of a page: its id → (number, label)."""
    cards = re.findall(
        r'id="count-([a-z]+)"[^>]*><div class="num">(\d+)</div><div class="label">([^<]+)</div>',
        html,
    )
    return {name: (int(number), label) for name, number, label in cards}


def store(source: Any, *items: dict[str, Any], judge: bool = True) -> list[Event]:
    results = feedback_ingest(source=source, items=list(items))
    ids = [result.id for result in results]
    feedback_events_normalize(event_ids=ids)
    if judge:
        quality_events_judge(event_ids=ids)
    return list(Event.objects.filter(pk__in=ids).order_by("id"))


def test_the_home_page_the_dashboard_and_the_leaderboard_count_the_same_data_alike(
    make_source, client, django_user_model
) -> None:
    source = make_source("counts").source
    store(
        source,
        rating(id="up", rater="ann", rating=1),
        rating(id="down", rater="bob", rating=-1),
        preference(id="ab", rater="cy"),
    )
    (spam,) = store(source, rating(id="spam", rater="bot", rating=1, response="Buy pills now"))
    verdict_override(event_id=spam.pk, status="rejected", note="spam")
    store(source, rating(id="later", rater="dee", rating=1), judge=False)
    client.force_login(django_user_model.objects.create_superuser("root", password="pw-root"))

    home = numbers(client.get("/").content.decode())
    dashboard = numbers(client.get("/dashboard/").content.decode())
    leaderboard = client.get("/api/v1/leaderboard").json()
    thumbs = client.get("/api/v1/thumbs").json()

    # Events received: every event, whatever its verdict, on both pages.
    assert home["events"] == (5, "events received (any verdict)") == dashboard["events"]
    # By verdict: the spam is rejected, not accepted; the unjudged event waits.
    assert home["accepted"][0] == dashboard["accepted"][0] == 3
    assert home["rejected"][0] == dashboard["rejected"][0] == 1
    assert home["waiting"] == (1, "waiting for a verdict")
    assert home["accepted"][1].startswith("verdict accepted")
    assert dashboard["accepted"][1] == "verdict accepted"
    # What the leaderboard counts: one battle (the preference), two thumbs (not the spam's, not
    # the unjudged one's).
    assert home["battles"] == (leaderboard["battles"], "battles the leaderboard counts")
    assert leaderboard["battles"] == 1
    thumbs_total = sum(series["total"]["n"] for series in thumbs["series"])
    assert home["thumbs"][0] == dashboard["thumbs"][0] == thumbs_total == 2
    assert home["thumbs"][1] == dashboard["thumbs"][1] == "thumbs the leaderboard counts"


def test_the_home_counts_are_counted_at_most_every_30_seconds_and_say_when(
    make_source, client, django_user_model, monkeypatch
) -> None:
    from apps.site import selectors

    source = make_source("counted").source
    store(source, rating(id="one", rater="ann", rating=1))
    client.force_login(django_user_model.objects.create_superuser("root", password="pw-root"))
    counted = []
    real = selectors.home_counts
    monkeypatch.setattr(selectors, "home_counts", lambda: counted.append(1) or real())

    first = client.get("/").content.decode()
    store(source, rating(id="two", rater="bob", rating=1))
    again = client.get("/").content.decode()

    assert len(counted) == 1  # the second page used the first count
    assert numbers(first)["events"][0] == numbers(again)["events"][0] == 1
    assert re.search(r"Counted at \d\d:\d\d:\d\d UTC", again)
    from django.core.cache import cache

    cache.delete("sinkhole:home-counts")  # as when 30 seconds have passed
    assert numbers(client.get("/").content.decode())["events"][0] == 2
    assert len(counted) == 2
