"""Reads of curators' decisions that other apps use (datasets: curated-only, gold rows)."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery

from apps.curation.models import Decision


def _latest_judgement() -> Subquery:
    """The newest live accept/reject decision of the outer event."""
    return Subquery(
        Decision.objects.filter(
            event=OuterRef("event"), action__in=["accept", "reject"], undone_at__isnull=True
        )
        .order_by("-id")
        .values("action")[:1]
    )


def accepted_event_ids() -> QuerySet:
    """Ids of events whose newest live accept/reject decision is accept (a values_list queryset,
    usable in `event_id__in=`)."""
    return (
        Decision.objects.filter(action="accept", undone_at__isnull=True)
        .annotate(latest=_latest_judgement())
        .filter(latest="accept")
        .values_list("event_id", flat=True)
        .distinct()
    )


def rejected_event_ids() -> QuerySet:
    return (
        Decision.objects.filter(action="reject", undone_at__isnull=True)
        .annotate(latest=_latest_judgement())
        .filter(latest="reject")
        .values_list("event_id", flat=True)
        .distinct()
    )


def gold_decisions() -> QuerySet[Decision]:
    """Live edit-to-gold decisions, newest first (the newest per event and position wins)."""
    return Decision.objects.filter(action="gold", undone_at__isnull=True).order_by("-id")
