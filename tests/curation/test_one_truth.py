"""One truth per number: the dashboard's thumbs-up rates count what the leaderboard counts
(accepted feedback, not rejected spam), and the home page lists each event with its verdict,
not the ingest's "accepted" for spam the filters rejected."""

from __future__ import annotations

from apps.curation.selectors import dashboard_data
from apps.evaluation.selectors import BattleFilter
from apps.evaluation.thumbs import thumbs_rates
from apps.quality.services import verdict_override
from tests.conftest import rating


def test_the_dashboards_thumbs_leave_out_rejected_spam_as_the_leaderboard_does(add_events):
    (good,) = add_events(rating(rating=-1, rater="ann"))
    (spam,) = add_events(rating(rating=1, rater="bot", response="Buy now at cheap-pills.example"))
    verdict_override(event_id=spam.pk, status="rejected", note="spam")

    data = dashboard_data(days=30)
    leaderboard = thumbs_rates(BattleFilter(), bucket="day")

    assert data["thumbs_totals"] == {"llama3.1:8b": 1}
    assert [rate for _, rate in data["thumbs"]["llama3.1:8b"]] == [0.0]
    assert leaderboard["series"][0]["total"]["n"] == 1
    assert leaderboard["series"][0]["total"]["up"] == 0


def test_the_home_page_lists_rejected_spam_as_rejected(client, curator, add_events):
    (spam,) = add_events(rating(rating=1, rater="bot", response="Buy now at cheap-pills.example"))
    verdict_override(event_id=spam.pk, status="rejected", note="spam")

    client.force_login(curator)
    html = client.get("/").content.decode()

    assert '<td class="verdict-rejected">rejected</td>' in html
    assert "<th>verdict</th>" in html
