"""Reads of curation: the inbox page, the event page, the dashboard, and curators' decisions
that other apps use (datasets: curated-only, gold rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.curation.filters import events_filtered, latest_judgement
from apps.curation.models import Decision, EventTag
from apps.feedback.models import Event, Interaction, RaterTombstone, Rating
from apps.feedback.selectors import event_detail_queryset, latest_revisions
from apps.quality.models import EventSignal, Verdict
from apps.quality.selectors import current_verdicts_prefetch, rater_reputation
from apps.quality.text import hamming, to_unsigned

PAGE_SIZE = 50
COUNT_CAP = 1000


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


def event_tags(*, event_id: int) -> list[str]:
    return list(
        EventTag.objects.filter(event_id=event_id).order_by("name").values_list("name", flat=True)
    )


# --- the inbox ----------------------------------------------------------------------------------


@dataclass
class InboxPage:
    rows: list[Event]
    next_cursor: int | None  # the id to pass as `before` for the next (older) page
    first: bool  # no cursor: the newest page
    filters: dict[str, Any] = field(default_factory=dict)


def _latest() -> QuerySet[Event]:
    """The events the inbox lists and counts: latest revisions only (an event that a later one
    revises is reached from that event's page)."""
    return latest_revisions(Event.objects.all())


def inbox_page(
    *, filters: dict[str, Any], before: int | None = None, size: int = PAGE_SIZE
) -> InboxPage:
    """One page of the filtered events, newest first, by keyset (`id < before`): never an OFFSET
    scan and never an exact COUNT. Each row carries `current_verdicts`, `curator_tags`,
    `rating_row` and `judgement` ('accept', 'reject' or None)."""
    # Two steps: the ids first (narrow rows, only the filters' own tables), then the page's
    # rows with their joins for just those ids.
    qs = events_filtered(filters, _latest())
    if before is not None:
        qs = qs.filter(id__lt=before)
    ids = list(qs.order_by("-id").values_list("id", flat=True)[: size + 1])
    qs = (
        Event.objects.filter(pk__in=ids[:size])
        .select_related("source", "rating_row")
        .prefetch_related(
            current_verdicts_prefetch(),
            Prefetch("curator_tags", queryset=EventTag.objects.order_by("name")),
        )
        .annotate(judgement=latest_judgement())
        .order_by("-id")
    )
    rows = list(qs)
    more = len(ids) > size
    rows = rows[:size]
    return InboxPage(
        rows=rows,
        next_cursor=rows[-1].id if more and rows else None,
        first=before is None,
        filters=filters,
    )


def inbox_count(*, filters: dict[str, Any], cap: int = COUNT_CAP) -> dict[str, Any]:
    """How many events match, counted up to CAP ("1,000+"). With no filter at all on
    PostgreSQL, the planner's estimate of the table's size (marked approximate)."""
    if not filters and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = 'feedback_event'::regclass"
            )
            estimate = int(cursor.fetchone()[0])
        if estimate > cap:
            return {"count": estimate, "exact": False, "approximate": True}
    ids = events_filtered(filters, _latest()).order_by().values("id")[: cap + 1]
    n = ids.count()
    if n > cap:
        return {"count": cap, "exact": False, "approximate": False}
    return {"count": n, "exact": True, "approximate": False}


def count_label(count: dict[str, Any]) -> str:
    if count["approximate"]:
        return f"about {count['count']:,}"
    return f"{count['count']:,}" + ("" if count["exact"] else "+")


def selection_ids(*, filters: dict[str, Any], limit: int) -> list[int]:
    """The ids of the whole filtered selection, newest first, at most LIMIT + 1 (so a caller can
    tell that there were more)."""
    return list(
        events_filtered(filters, _latest())
        .order_by("-id")
        .values_list("id", flat=True)[: limit + 1]
    )


# --- the event page -----------------------------------------------------------------------------


def event_for_page(*, event_id: int) -> Event | None:
    return event_detail_queryset().filter(pk=event_id).first()


def event_decisions(*, event_id: int) -> QuerySet[Decision]:
    return (
        Decision.objects.filter(event_id=event_id)
        .select_related("user", "undone_by", "verdict")
        .order_by("-id")
    )


def rater_summary(*, event: Event, limit: int = 10) -> dict[str, Any] | None:
    """The rater's trust and history: reputation, how many events, how many flagged now, and
    their latest other events."""
    if not event.rater_hash:
        return None
    others = Event.objects.filter(rater_hash=event.rater_hash)
    statuses = dict(
        Verdict.objects.filter(event__rater_hash=event.rater_hash, is_current=True)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {
        "hash": event.rater_hash,
        "reputation": rater_reputation(rater_hash=event.rater_hash),
        "events": others.count(),
        "statuses": statuses,
        "recent": list(
            others.exclude(pk=event.pk)
            .select_related("source")
            .prefetch_related(current_verdicts_prefetch())
            .order_by("-id")[:limit]
        ),
    }


def similar_events(*, event: Event, limit: int = 10) -> dict[str, list[Event]]:
    """Events on the same prompt (same normalized prompt hash), and events whose rater text is
    the same or nearly the same (the quality app's SimHash bands, within 3 bits)."""
    hashes = list(
        Interaction.objects.filter(event=event).values_list("prompt_hash", flat=True).distinct()
    )
    same_prompt: list[Event] = []
    if hashes:
        ids = (
            Interaction.objects.filter(prompt_hash__in=hashes)
            .exclude(event_id=event.pk)
            .order_by("-event_id")
            .values_list("event_id", flat=True)[: limit * 4]
        )
        same_prompt = list(
            Event.objects.filter(pk__in=list(dict.fromkeys(ids))[:limit])
            .select_related("source")
            .prefetch_related(current_verdicts_prefetch())
            .order_by("-id")
        )
    near: list[Event] = []
    signal = EventSignal.objects.filter(event_id=event.pk).first()
    if signal is not None and signal.simhash is not None:
        bands = Q()
        for name in ("band0", "band1", "band2", "band3"):
            value = getattr(signal, name)
            if value is not None:
                bands |= Q(**{name: value})
        candidates = (
            EventSignal.objects.filter(bands)
            .exclude(event_id=event.pk)
            .filter(simhash__isnull=False)
            .order_by("-event_id")
            .values_list("event_id", "simhash")[:200]
        )
        mine = to_unsigned(signal.simhash)
        ids = [i for i, h in candidates if hamming(mine, to_unsigned(h)) <= 3][:limit]
        near = list(
            Event.objects.filter(pk__in=ids)
            .select_related("source")
            .prefetch_related(current_verdicts_prefetch())
            .order_by("-id")
        )
    return {"same_prompt": same_prompt, "near_text": near}


# --- the dashboard ------------------------------------------------------------------------------


def dashboard_data(*, days: int = 30) -> dict[str, Any]:
    """Daily series over the last DAYS: events per source, thumbs-up rate per model and
    checkpoint (usable thumbs only, as the leaderboard counts them), and the share of events
    quarantined or rejected (current verdicts)."""
    since = timezone.now() - timedelta(days=days)
    per_source: dict[str, list[tuple[Any, float]]] = {}
    for day, name, n in (
        Event.objects.filter(received_at__gte=since)
        .annotate(day=TruncDate("received_at"))
        .values_list("day", "source__name")
        .annotate(n=Count("id"))
        .order_by("day")
    ):
        per_source.setdefault(name, []).append((day, n))

    # Thumbs count as the leaderboard counts them: accepted events of raters not forgotten, the
    # latest revision of a changed vote (rejected spam and events held for review are left out).
    thumbs: dict[str, list[tuple[Any, float]]] = {}
    usable = Exists(
        Verdict.objects.filter(event=OuterRef("event_id"), is_current=True, status="accepted")
    )
    forgotten = Exists(RaterTombstone.objects.filter(rater_hash=OuterRef("rater_hash")))
    rows = (
        latest_revisions(
            Rating.objects.filter(created_at__gte=since, value__in=[1, -1]), event_ref="event_id"
        )
        .filter(usable)
        .exclude(forgotten)
        .annotate(day=TruncDate("created_at"))
        .values_list("day", "model", "checkpoint")
        .annotate(n=Count("id"), up=Count("id", filter=Q(value=1)))
        .order_by("day")
    )
    totals: dict[str, int] = {}
    for day, model, checkpoint, n, up in rows:
        name = f"{model or '(no model)'}" + (f" @ {checkpoint}" if checkpoint else "")
        thumbs.setdefault(name, []).append((day, up / n))
        totals[name] = totals.get(name, 0) + n
    thumbs_counted = sum(totals.values())  # every series, not only the charted top eight
    top = sorted(totals, key=lambda k: -totals[k])[:8]
    thumbs = {name: thumbs[name] for name in top}

    flagged = Exists(
        Verdict.objects.filter(
            event=OuterRef("pk"), is_current=True, status__in=["quarantined", "rejected"]
        )
    )
    quarantine: list[tuple[Any, float]] = []
    for day, n, bad in (
        Event.objects.filter(received_at__gte=since)
        .annotate(day=TruncDate("received_at"), bad=flagged)
        .values_list("day")
        .annotate(n=Count("id"), b=Count("id", filter=Q(bad=True)))
        .order_by("day")
    ):
        quarantine.append((day, bad / n if n else 0.0))
    status_totals = dict(
        Verdict.objects.filter(is_current=True, event__received_at__gte=since)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {
        "days": days,
        "events": sum(n for points in per_source.values() for _, n in points),
        "per_source": per_source,
        "thumbs": thumbs,
        "thumbs_totals": {name: totals[name] for name in top},
        "thumbs_counted": thumbs_counted,
        "quarantine": quarantine,
        "status_totals": status_totals,
        "decisions": Decision.objects.filter(created_at__gte=since).count(),
    }
