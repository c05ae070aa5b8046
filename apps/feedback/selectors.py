"""Reads of the feedback app: querysets with their joins already applied."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count, Exists, OuterRef, Prefetch, QuerySet, Subquery

from apps.feedback import signals
from apps.feedback.models import Comparison, Event, Interaction
from apps.sources.hashing import rater_hash
from apps.sources.models import Source


def event_list(
    *,
    source: Source | None = None,
    source_name: str | None = None,
    type: str | None = None,
    status: str | None = None,
    model: str | None = None,
    checkpoint: str | None = None,
    rater: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Event]:
    """Events, newest first, filtered; a rater is given as the client's raw id and is looked up
    by its keyed hash, so it needs a source (the key's own, or SOURCE_NAME)."""
    qs = Event.objects.select_related("source")
    if source is not None:
        qs = qs.filter(source=source)
    elif source_name:
        qs = qs.filter(source__name=source_name)
    if type:
        qs = qs.filter(type=type)
    if status:
        qs = qs.filter(status=status)
    if model:
        qs = qs.filter(model=model)
    if checkpoint:
        qs = qs.filter(checkpoint=checkpoint)
    if rater:
        owner = source or Source.objects.filter(name=source_name).first()
        qs = qs.filter(rater_hash=rater_hash(owner.pk, rater)) if owner else qs.none()
    if since:
        qs = qs.filter(received_at__gte=since)
    if until:
        qs = qs.filter(received_at__lt=until)
    return qs.annotate(revised_by=_revised_by()).order_by("-id")


def event_detail_queryset() -> QuerySet[Event]:
    """Events with their derived rows prefetched, and what the apps above attach to an event's
    detail (quality: the current verdict)."""
    return (
        Event.objects.select_related("source", "rating_row")
        .annotate(revised_by=_revised_by())
        .prefetch_related(
            Prefetch("interactions", queryset=Interaction.objects.order_by("position")),
            Prefetch(
                "comparisons",
                queryset=Comparison.objects.select_related("interaction_a", "interaction_b"),
            ),
            # the current verdict and whatever else the apps above attach (quality provides it)
            *signals.event_detail_prefetches.call(),
        )
    )


def _revised_by() -> Subquery:
    return Subquery(Event.objects.filter(supersedes=OuterRef("pk")).values("id")[:1])


def latest_revisions(qs: QuerySet, *, event_ref: str = "pk") -> QuerySet:
    """QS (events, or rows pointing at an event by EVENT_REF) without the events that a later
    event revises (`supersedes`): datasets, leaderboards and the inbox count only the latest
    revision of a changed rating. An anti-join on the unique `supersedes_id` index."""
    return qs.exclude(Exists(Event.objects.filter(supersedes=OuterRef(event_ref))))


def event_superseded_by(event: Event) -> int | None:
    """The server id of the event that revises EVENT, or None (annotated by the selectors above
    as `revised_by`; one query otherwise)."""
    if hasattr(event, "revised_by"):
        return event.revised_by
    return Event.objects.filter(supersedes=event).values_list("id", flat=True).first()


def event_normalized(event: Event) -> dict[str, Any]:
    """The derived rows of EVENT, as plain data (empty until the worker has normalized it)."""
    rating = getattr(event, "rating_row", None)
    return {
        "interactions": [
            {
                "position": i.position,
                "model": i.model,
                "checkpoint": i.checkpoint,
                "prompt_hash": i.prompt_hash,
                "edited": i.edited,
            }
            for i in event.interactions.all()
        ],
        "rating": None
        if rating is None
        else {"value": rating.value, "score": rating.score, "reason": rating.reason},
        "comparisons": [
            {
                "a": c.interaction_a.position,
                "b": c.interaction_b.position,
                "model_a": c.model_a,
                "model_b": c.model_b,
                "outcome": c.outcome,
            }
            for c in event.comparisons.all()
        ],
    }


def event_unreadable(event: Event) -> list[str]:
    """What of EVENT, stored before validation bounded it, no reader can carry (see
    `unreadable_values`). Empty for every event stored since (the log is append-only: such rows
    are shown flagged and judged `rejected`, never edited)."""
    return unreadable_values(event.payload, event.occurred_at)


def unreadable_values(payload: Any, occurred_at: Any) -> list[str]:
    """What of a stored event's PAYLOAD no reader can carry: a timestamp outside Python's range
    (OCCURRED_AT then reads back as None, see apps/core/db.py) or numbers beyond 64 bits."""
    from apps.feedback.schema import _bad_numbers

    payload = payload if isinstance(payload, dict) else {}
    problems = []
    if occurred_at is None and payload.get("timestamp"):
        problems.append(f"timestamp {payload['timestamp']!r} lies outside the readable range")
    if any(type(value) is dict or type(value) is list for value in payload.values()):
        for path in _bad_numbers(payload, "payload"):
            problems.append(f"{path} is a number beyond 64 bits")
    return problems


def unreadable_events(*, chunk: int = 2000) -> list[tuple[int, list[str]]]:
    """Every stored event with unreadable values, as (id, problems): for the operator's
    `find_unreadable_events` command. Reads the whole log in chunks."""
    found = []
    last = 0
    while True:
        rows = list(
            Event.objects.filter(pk__gt=last)
            .order_by("pk")
            .only("pk", "payload", "occurred_at")[:chunk]
        )
        if not rows:
            return found
        for event in rows:
            problems = event_unreadable(event)
            if problems:
                found.append((event.pk, problems))
        last = rows[-1].pk


def overview() -> dict[str, Any]:
    """Counts for the landing page."""
    by_type = dict(Event.objects.values_list("type").annotate(n=Count("id")).order_by())
    return {
        "events": sum(by_type.values()),
        "by_type": by_type,
        "sources": list(Source.objects.annotate(n=Count("events")).values("name", "n")),
        "recent": list(Event.objects.select_related("source").order_by("-id")[:10]),
    }
