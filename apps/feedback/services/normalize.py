"""Derived rows: interactions, ratings and pairwise comparisons, built from the raw event log.

`derive` is a pure function of one stored payload; `feedback_events_normalize` writes its rows
for events that have none yet (so a task that runs twice does the work once), and
`feedback_normalized_rebuild` throws every derived row away and derives it again.

The database says what is left to do, not the broker (DESIGN 8): `feedback_backlog_normalize`
drains the newest events without derived rows in batches (what the ingest hint and the
periodic drain run), and `feedback_pending_normalize` sweeps the whole log (the reconciler: at
worker start-up and every few minutes)."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, Max, OuterRef, QuerySet

from apps.feedback.models import Comparison, Event, Interaction, Rating

# How far behind the newest normalized event a drain looks for events still without rows: ids
# are taken in one order and committed in another, and a killed worker's batch rolls back whole.
# Older gaps are the sweep's.
BACKLOG_LOOKBACK_IDS = 20_000
BACKLOG_BATCH = 500

logger = logging.getLogger(__name__)

_SPACE = re.compile(r"\s+")


def message_text(content: Any) -> str:
    """The text of an OpenAI message's content: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return ""


def prompt_hash(messages: list[dict[str, Any]]) -> str:
    """Equal for prompts that differ only in case and white space."""
    digest = hashlib.blake2b(digest_size=16)
    for message in messages:
        text = _SPACE.sub(" ", message_text(message.get("content"))).strip().lower()
        digest.update(f"{message.get('role')}\x00{text}\x01".encode())
    return digest.hexdigest()


@dataclass
class Derived:
    interactions: list[dict[str, Any]] = field(
        default_factory=list
    )  # position, model, checkpoint, edited
    rating: dict[str, Any] | None = None  # value, score, reason
    comparisons: list[tuple[int, int, str]] = field(default_factory=list)  # pos a, pos b, outcome


def derive(payload: dict[str, Any]) -> Derived:
    kind = payload["type"]
    out = Derived()
    model, checkpoint = payload.get("model") or "", payload.get("checkpoint") or ""
    if kind in ("rating", "edit"):
        out.interactions.append(
            {"position": 0, "model": model, "checkpoint": checkpoint, "edited": kind == "edit"}
        )
        if kind == "rating":
            out.rating = {
                "value": payload.get("rating"),
                "score": payload.get("score"),
                "reason": payload.get("reason") or "",
            }
        return out
    responses = payload["responses"]
    for position, response in enumerate(responses):
        out.interactions.append(
            {
                "position": position,
                "model": response.get("model") or model,
                "checkpoint": response.get("checkpoint") or checkpoint,
                "edited": False,
            }
        )
    if kind == "preference":
        choice = payload["choice"]
        outcome = {0: "a", 1: "b"}.get(choice, choice)
        out.comparisons.append((0, 1, outcome))
    else:  # ranking, best first: every ordered pair
        place = {position: rank for rank, position in enumerate(payload["ranking"])}
        for a, b in combinations(range(len(responses)), 2):
            out.comparisons.append((a, b, "a" if place[a] < place[b] else "b"))
    return out


def _pending(event_ids: list[int]) -> Iterator[Event]:
    return (
        Event.objects.filter(id__in=event_ids, interactions__isnull=True)
        .only("id", "source_id", "payload", "rater_hash", "received_at")
        .iterator(chunk_size=1000)
    )


def feedback_events_normalize(*, event_ids: list[int]) -> int:
    """Write derived rows for those of EVENT_IDS that have none; return how many events."""
    try:
        return _normalize(event_ids)
    except IntegrityError:
        # Another worker normalized some of them at the same moment: do the rest.
        return _normalize(event_ids)


@transaction.atomic
def _normalize(event_ids: list[int]) -> int:
    events = list(_pending(event_ids))
    if not events:
        return 0
    derived = []
    for event in events:
        try:
            derived.append((event, derive(event.payload)))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            # One event that cannot be derived must not hold back the rest of its batch.
            logger.warning(
                "event cannot be normalized", extra={"event_id": event.id, "error": repr(exc)}
            )
    interactions = [
        Interaction(
            event=event, prompt_hash=prompt_hash(event.payload.get("messages") or []), **spec
        )
        for event, d in derived
        for spec in d.interactions
    ]
    Interaction.objects.bulk_create(interactions, batch_size=1000)
    by_key = {(i.event_id, i.position): i for i in interactions}
    ratings, comparisons = [], []
    for event, d in derived:
        if d.rating is not None:
            interaction = by_key[(event.id, 0)]
            ratings.append(
                Rating(
                    event=event,
                    interaction=interaction,
                    source_id=event.source_id,
                    model=interaction.model,
                    checkpoint=interaction.checkpoint,
                    rater_hash=event.rater_hash,
                    created_at=event.received_at,
                    **d.rating,
                )
            )
        for a, b, outcome in d.comparisons:
            ia, ib = by_key[(event.id, a)], by_key[(event.id, b)]
            comparisons.append(
                Comparison(
                    event=event,
                    interaction_a=ia,
                    interaction_b=ib,
                    source_id=event.source_id,
                    model_a=ia.model,
                    model_b=ib.model,
                    outcome=outcome,
                    rater_hash=event.rater_hash,
                    created_at=event.received_at,
                )
            )
    Rating.objects.bulk_create(ratings, batch_size=1000)
    Comparison.objects.bulk_create(comparisons, batch_size=1000)
    return len(derived)


def _without_rows() -> QuerySet[Event]:
    return Event.objects.filter(~Exists(Interaction.objects.filter(event_id=OuterRef("pk"))))


def _claim(queryset: QuerySet[Event], size: int) -> list[int]:
    """Up to SIZE ids of QUERYSET, oldest first, locked for this transaction; rows another
    drain holds are skipped (PostgreSQL), so two workers never take the same events."""
    ordered = queryset.order_by("id")
    if connection.features.has_select_for_update_skip_locked:
        ordered = ordered.select_for_update(skip_locked=True, no_key=True, of=("self",))
    return list(ordered.values_list("id", flat=True)[:size])


def feedback_backlog_normalize(
    *, batch_size: int = BACKLOG_BATCH, max_seconds: float | None = None
) -> tuple[int, bool]:
    """Normalize the newest events that have no derived rows yet, BATCH_SIZE per transaction,
    until none is left or MAX_SECONDS have passed; return how many events, and whether some
    may be left (the budget ran out: the caller hints again, so that one drain never holds a
    worker that other queues wait for).

    Looks back BACKLOG_LOOKBACK_IDS ids from the newest normalized event, so it costs a few
    index probes when there is nothing to do; the sweep (`feedback_pending_normalize`) finds
    what lies further back."""
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    newest = Interaction.objects.aggregate(newest=Max("event_id"))["newest"] or 0
    after = max(0, newest - BACKLOG_LOOKBACK_IDS)
    done = 0
    while True:
        with transaction.atomic():
            ids = _claim(_without_rows().filter(id__gt=after), batch_size)
            if not ids:
                return done, False
            done += _normalize(ids)
        after = ids[-1]  # each event is looked at once per drain, even one that cannot be derived
        if deadline is not None and time.monotonic() > deadline:
            return done, True  # at least one batch per drain: each one makes progress


def feedback_normalized_rebuild(*, chunk_size: int = 5000, progress: Any = None) -> int:
    """Delete every derived row and derive it again from the raw log; return events done."""
    with transaction.atomic():
        Comparison.objects.all().delete()
        Rating.objects.all().delete()
        Interaction.objects.all().delete()
    return feedback_pending_normalize(chunk_size=chunk_size, progress=progress)


def feedback_pending_normalize(*, chunk_size: int = 5000, progress: Any = None) -> int:
    """Normalize every event that has no derived rows yet, anywhere in the log: the reconciler's
    sweep (a worker starting, the periodic task, `manage.py normalize_feedback`)."""
    done, last_id = 0, 0
    while True:
        with transaction.atomic():
            ids = _claim(_without_rows().filter(id__gt=last_id), chunk_size)
            if not ids:
                return done
            done += _normalize(ids)
        last_id = ids[-1]
        if progress is not None:
            progress(len(ids))
