"""Reads for the home page: the numbers it shows, each counted as the page that owns it counts it
(one truth per number): events as the event log holds them, verdicts as the quality pipeline gave
them (the dashboard's cards), battles and thumbs as the leaderboard counts them."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.db.models import Count
from django.utils import timezone

from apps.evaluation.selectors import BattleFilter, battle_counts, thumbs_counts
from apps.feedback.models import Event
from apps.quality.backlog import events_without_verdict
from apps.quality.models import Verdict

# The home page is every staff member's first page; its counts run the leaderboard's aggregates
# over the whole log, so they are counted at most once per this many seconds (the page says when).
HOME_COUNTS_SECONDS = 30


def home_counts_cached() -> dict[str, Any]:
    """`home_counts()` plus `counted_at`, from the cache when counted in the last
    HOME_COUNTS_SECONDS."""

    def count() -> dict[str, Any]:
        return {**home_counts(), "counted_at": timezone.now()}

    counts = cache.get_or_set("sinkhole:home-counts", count, HOME_COUNTS_SECONDS)
    return counts if isinstance(counts, dict) else count()


def home_counts() -> dict[str, int]:
    """`events` (every event received, whatever its verdict), `accepted` / `quarantined` /
    `rejected` (events by current verdict), `waiting` (no verdict yet), `battles` and `thumbs`
    (what the leaderboard counts: accepted events' comparisons and ±1 ratings, latest revisions,
    raters not forgotten)."""
    everything = BattleFilter()
    by_verdict: dict[str, Any] = dict(
        Verdict.objects.filter(is_current=True)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {
        "events": Event.objects.count(),
        "accepted": by_verdict.get(Verdict.Status.ACCEPTED, 0),
        "quarantined": by_verdict.get(Verdict.Status.QUARANTINED, 0),
        "rejected": by_verdict.get(Verdict.Status.REJECTED, 0),
        "waiting": events_without_verdict().count(),  # as /status/ counts them
        "battles": sum(row[3] for row in battle_counts(everything)),
        "thumbs": sum(row["up"] + row["down"] for row in thumbs_counts(everything)),
    }
