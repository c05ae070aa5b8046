"""The /status/ page: workers alive, queue depths and the events waiting for a verdict, with
the oldest one linked."""

from __future__ import annotations

from apps.curation.status import status_data
from tests.conftest import rating


def test_the_status_page_shows_no_worker_and_the_oldest_event_waiting_for_a_verdict(
    client, curator, add_events
) -> None:
    first, second = add_events(rating(rater="a"), rating(rater="b"), judge=False)
    client.force_login(curator)

    html = client.get("/status/").content.decode()

    assert 'id="no-workers"' in html
    assert "2 events wait for a verdict" in html
    assert f'href="/events/{first.pk}/">#{first.pk}</a>' in html
    assert "<td>quality</td>" in html


def test_the_status_counts_only_events_without_a_verdict(add_events) -> None:
    add_events(rating(rater="a"))
    (waiting,) = add_events(rating(rater="b"), judge=False)

    status = status_data(timeout=0.2)

    assert status["waiting"] == 1
    assert status["oldest_waiting"]["id"] == waiting.pk
    assert status["workers"] == []


def test_the_status_page_needs_a_role(client) -> None:
    assert client.get("/status/").status_code in (302, 403)
