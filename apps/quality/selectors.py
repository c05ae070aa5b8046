"""Reads of the quality app, with their joins applied."""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Prefetch, QuerySet

from apps.feedback.models import Event
from apps.quality.models import RaterReputation, RequalifyJob, Verdict


def verdict_current(*, event_id: int) -> Verdict | None:
    return (
        Verdict.objects.filter(event_id=event_id, is_current=True).select_related("curator").first()
    )


def verdict_history(*, event_id: int) -> QuerySet[Verdict]:
    """Every verdict the event ever had, newest first."""
    return Verdict.objects.filter(event_id=event_id).select_related("curator").order_by("-id")


def verdict_as_dict(verdict: Verdict | None) -> dict[str, Any] | None:
    """A verdict as the API shows it (None while the quality worker has not judged the event)."""
    if verdict is None:
        return None
    return {
        "status": verdict.status,
        "score": verdict.score,
        "trust_weight": verdict.trust_weight,
        "reasons": verdict.reasons,
        "filters": {name: spec.get("version") for name, spec in verdict.filters.items()},
        "pipeline_version": verdict.pipeline_version,
        "origin": verdict.origin,
        "judged_at": verdict.created_at,
    }


def current_verdicts_prefetch() -> Prefetch:
    """`Event.objects.prefetch_related(current_verdicts_prefetch())` puts the current verdict in
    `event.current_verdicts` (a list of at most one)."""
    return Prefetch(
        "verdicts", queryset=Verdict.objects.filter(is_current=True), to_attr="current_verdicts"
    )


def events_with_status(*, status: str) -> QuerySet[Event]:
    """Events whose current verdict has STATUS — e.g. the curators' quarantine queue. Nothing is
    ever deleted: quarantined and rejected events are all here."""
    current = Verdict.objects.filter(event=OuterRef("pk"), is_current=True, status=status)
    return (
        Event.objects.filter(Exists(current))
        .select_related("source")
        .prefetch_related(current_verdicts_prefetch())
    )


def events_usable() -> QuerySet[Event]:
    """Events that datasets and leaderboards may use: judged, and accepted (by the filters or a
    curator). Events not judged yet are not usable."""
    return events_with_status(status=Verdict.Status.ACCEPTED)


def rater_reputation(*, rater_hash: str) -> RaterReputation | None:
    return RaterReputation.objects.filter(rater_hash=rater_hash).first()


def requalify_jobs() -> QuerySet[RequalifyJob]:
    return RequalifyJob.objects.order_by("-id")
