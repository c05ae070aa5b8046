"""Derived rows: interactions, ratings and pairwise comparisons, built from the raw event log.

`derive` is a pure function of one stored payload; `feedback_events_normalize` writes its rows
for events that have none yet (so a task that runs twice does the work once), and
`feedback_normalized_rebuild` throws every derived row away and derives it again."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from django.db import IntegrityError, transaction

from apps.feedback.models import Comparison, Event, Interaction, Rating

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
    derived = [(event, derive(event.payload)) for event in events]
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
    return len(events)


def feedback_normalized_rebuild(*, chunk_size: int = 5000, progress: Any = None) -> int:
    """Delete every derived row and derive it again from the raw log; return events done."""
    with transaction.atomic():
        Comparison.objects.all().delete()
        Rating.objects.all().delete()
        Interaction.objects.all().delete()
    return feedback_pending_normalize(chunk_size=chunk_size, progress=progress)


def feedback_pending_normalize(*, chunk_size: int = 5000, progress: Any = None) -> int:
    """Normalize every event that has no derived rows yet (e.g. after the worker was down)."""
    done, last_id = 0, 0
    while True:
        ids = list(
            Event.objects.filter(id__gt=last_id, interactions__isnull=True)
            .order_by("id")
            .values_list("id", flat=True)[:chunk_size]
        )
        if not ids:
            return done
        done += feedback_events_normalize(event_ids=ids)
        last_id = ids[-1]
        if progress is not None:
            progress(len(ids))
