"""Reads of the evaluation app: battles and thumbs, straight from the normalized feedback.

The canonical battle table is a query, not a copy. A battle is
- a `Comparison` row (a preference, one pair of an expanded ranking, an imported FastChat
  battle or Open WebUI arena vote, which the importers already turn into preferences), or
- a thumbs `Rating` whose event names the sibling models it was shown beside
  (`metadata.sibling_model_ids`, Open WebUI's arena field, or `metadata.siblings`): a thumbs-up
  beats each sibling, a thumbs-down loses to each (Open WebUI's own reading).

Only usable events count (judged and accepted: apps.quality.selectors.events_usable), never
those of a forgotten rater (RaterTombstone), and only the latest revision of a changed vote
(an event that a later one `supersedes` is left out). The leaderboard needs only the count of each
(model_a, model_b, outcome) triple, so the database aggregates (GROUP BY) and a million battles
come back as a few thousand rows. A materialized battle table was considered and left out: it
would have to follow every verdict change, curator override and tombstone to stay true, while
the aggregate query reads the truth each time (see docs/leaderboard.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, Count, Exists, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, TruncDay, TruncWeek

from apps.core.ids import parse_id
from apps.curation.models import EventTag
from apps.feedback.models import Comparison, Event, RaterTombstone, Rating
from apps.feedback.selectors import latest_revisions
from apps.quality.models import Verdict

SIBLING_KEYS = ("sibling_model_ids", "siblings")


@dataclass(frozen=True)
class BattleFilter:
    """A slice of the battles. All fields optional; `min_trust` is the event's current
    verdict trust weight (rater reputation times the filters' confidence, 0-1)."""

    source: str | None = None  # a source's name (or its numeric id)
    tag: str | None = None  # an event tag (sent with the event, or put on by a curator)
    since: datetime | None = None  # inclusive, on when the user gave it (else when received)
    until: datetime | None = None  # exclusive
    min_trust: float | None = None
    # (key, value) pairs the event's metadata must hold, e.g. (("anony", True),): FastChat's
    # arena counts anonymous battles only.
    meta: tuple[tuple[str, Any], ...] = ()
    # Count events held for review too (an imported research log judged by live-traffic rules).
    include_quarantined: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "tag": self.tag,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "min_trust": self.min_trust,
            "meta": dict(self.meta),
            "include_quarantined": self.include_quarantined,
        }


def _usable(event_ref: str, min_trust: float | None, *, quarantined: bool = False) -> Exists:
    statuses = [Verdict.Status.ACCEPTED]
    if quarantined:
        statuses.append(Verdict.Status.QUARANTINED)
    verdicts = Verdict.objects.filter(
        event=OuterRef(event_ref), is_current=True, status__in=statuses
    )
    if min_trust is not None:
        verdicts = verdicts.filter(trust_weight__gte=min_trust)
    return Exists(verdicts)


def _tagged(event_ref: str, tag: str) -> Q:
    curator = Exists(EventTag.objects.filter(event=OuterRef(event_ref), name=tag))
    if connection.vendor == "postgresql":
        sent = Exists(Event.objects.filter(pk=OuterRef(event_ref), payload__tags__contains=[tag]))
    else:  # SQLite has no JSON containment; json_each does the same.
        sent = Q(
            **{
                f"{event_ref}__in": RawSQL(
                    "SELECT e.id FROM feedback_event e, json_each(e.payload, '$.tags') t "
                    "WHERE t.value = %s",
                    (tag,),
                )
            }
        )
    return Q(curator) | Q(sent)


def _sliced(qs: QuerySet, f: BattleFilter, *, event_ref: str = "event_id") -> QuerySet:
    qs = qs.filter(_usable(event_ref, f.min_trust, quarantined=f.include_quarantined)).exclude(
        Exists(RaterTombstone.objects.filter(rater_hash=OuterRef("rater_hash")))
    )
    qs = latest_revisions(qs, event_ref=event_ref)  # a changed vote counts once, as it is now
    return _narrowed(qs, f, event_ref=event_ref)


def _narrowed(qs: QuerySet, f: BattleFilter, *, event_ref: str = "event_id") -> QuerySet:
    """QS cut to the slice's source, time, tag and metadata (not to usable events)."""
    prefix = "event__" if event_ref == "event_id" else ""
    for key, value in f.meta:
        qs = qs.filter(**{f"{prefix}payload__metadata__{key}": value})
    if f.source:
        source_pk = parse_id(f.source)
        by = {"source_id": source_pk} if source_pk is not None else {"source__name": f.source}
        qs = qs.filter(**by)
    if f.since or f.until:
        qs = qs.annotate(_when=Coalesce("event__occurred_at", "created_at"))
        if f.since:
            qs = qs.filter(_when__gte=f.since)
        if f.until:
            qs = qs.filter(_when__lt=f.until)
    if f.tag:
        qs = qs.filter(_tagged(event_ref, f.tag))
    return qs


def battles_left_out(f: BattleFilter) -> dict[str, int]:
    """How many battles (comparison rows) of the slice the leaderboard did not count, by reason:
    `waiting` (no verdict yet: no worker has judged them), `rejected`, `quarantined` (held for
    review; `include_quarantined` counts them), `low_trust` (under `min_trust`), `forgotten`
    (the rater asked to be forgotten), `revised` (a later event revises the vote: only the
    latest revision counts), and `meta` (outside the metadata filter). Reasons with
    no battles are left out of the answer."""
    unsliced = BattleFilter(
        source=f.source, tag=f.tag, since=f.since, until=f.until, min_trust=f.min_trust
    )
    everything = _narrowed(Comparison.objects.all(), unsliced)
    in_slice = _narrowed(Comparison.objects.all(), f) if f.meta else everything
    status = Subquery(
        Verdict.objects.filter(event=OuterRef("event_id"), is_current=True).values("status")[:1]
    )
    trust = Subquery(
        Verdict.objects.filter(event=OuterRef("event_id"), is_current=True).values("trust_weight")[
            :1
        ]
    )
    forgotten = Exists(RaterTombstone.objects.filter(rater_hash=OuterRef("rater_hash")))
    revised = Exists(Event.objects.filter(supersedes=OuterRef("event_id")))
    low = (
        Case(When(Q(_trust__lt=f.min_trust) | Q(_trust__isnull=True), then=True), default=False)
        if f.min_trust is not None
        else Value(False)
    )
    rows = (
        in_slice.annotate(_status=status, _trust=trust, _forgotten=forgotten, _revised=revised)
        .annotate(_low=low)
        .order_by()
        .values_list("_status", "_low", "_forgotten", "_revised")
        .annotate(n=Count("*"))
    )
    found: dict[str, int] = {}
    counted = {Verdict.Status.ACCEPTED.value}
    if f.include_quarantined:
        counted.add(Verdict.Status.QUARANTINED.value)
    for state, weight, gone, superseded, n in rows:  # weight: True when under min_trust
        if gone:
            reason = "forgotten"
        elif superseded:
            reason = "revised"
        elif state is None:
            reason = "waiting"
        elif state not in counted:
            reason = str(state)
        elif weight:
            reason = "low_trust"
        else:
            continue
        found[reason] = found.get(reason, 0) + n
    if f.meta:
        outside = everything.count() - in_slice.count()
        if outside:
            found["meta"] = outside
    return found


def comparisons(f: BattleFilter) -> QuerySet[Comparison]:
    """The usable Comparison rows of the slice."""
    return _sliced(Comparison.objects.all(), f)


def sibling_ratings(f: BattleFilter) -> QuerySet[Rating]:
    """Usable thumbs whose event names arena siblings."""
    has_siblings = Q()
    for key in SIBLING_KEYS:
        has_siblings |= Q(**{"event__payload__metadata__has_key": key})
    return _sliced(Rating.objects.filter(value__in=[1, -1]).filter(has_siblings), f)


def _siblings_of(payload: Any) -> list[str]:
    metadata = payload.get("metadata") if isinstance(payload, dict) else None
    if not isinstance(metadata, dict):
        return []
    for key in SIBLING_KEYS:
        names = metadata.get(key)
        if isinstance(names, list):
            return [n for n in names if isinstance(n, str) and n]
    return []


def _sibling_battles(f: BattleFilter, *, ordered: bool = False) -> Iterator[tuple]:
    qs = sibling_ratings(f).annotate(_when=Coalesce("event__occurred_at", "created_at"))
    if ordered:
        qs = qs.order_by("_when", "event_id")
    for model, value, payload, when, event_id in qs.values_list(
        "model", "value", "event__payload", "_when", "event_id"
    ).iterator(chunk_size=2000):
        for sibling in _siblings_of(payload):
            yield (model, sibling, "a" if value == 1 else "b", when, event_id)


def battle_counts(f: BattleFilter) -> list[tuple[str, str, str, int]]:
    """(model_a, model_b, outcome, count) for every triple in the slice: the database does the
    GROUP BY, so this is a few thousand rows however many battles there are."""
    query = (
        comparisons(f)
        .order_by()
        .values_list("model_a", "model_b", "outcome")
        .annotate(n=Count("*"))
    )
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # The semi-join hashes a million verdict ids: let it do so in memory, in one batch.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL work_mem = '128MB'")
        rows = list(query)
    extra: dict[tuple[str, str, str], int] = {}
    for model_a, model_b, outcome, _when, _event in _sibling_battles(f):
        extra[(model_a, model_b, outcome)] = extra.get((model_a, model_b, outcome), 0) + 1
    return [*rows, *((*k, n) for k, n in extra.items())]


def battle_sequence(f: BattleFilter) -> list[tuple[str, str, str]]:
    """Every battle of the slice in time order (when the user gave it, else when received; then
    event and row id), for online Elo. Unlike battle_counts this reads every row."""
    rows = list(
        comparisons(f)
        .annotate(_when=Coalesce("event__occurred_at", "created_at"))
        .order_by("_when", "event_id", "id")
        .values_list("model_a", "model_b", "outcome", "_when", "event_id")
        .iterator(chunk_size=20000)
    )
    siblings = list(_sibling_battles(f, ordered=True))
    if siblings:
        rows.extend(siblings)
        rows.sort(key=lambda r: (r[3], r[4]))
    return [(a, b, o) for a, b, o, _w, _e in rows]


def battle_lengths(f: BattleFilter) -> Iterator[tuple[str, str, str, int, int]]:
    """(model_a, model_b, outcome, length of reply a, length of reply b) per battle, for style
    control. Reads every payload, so it is the slow path of the leaderboard."""
    qs = comparisons(f).values_list(
        "model_a",
        "model_b",
        "outcome",
        "interaction_a__position",
        "interaction_b__position",
        "event__payload",
    )
    for model_a, model_b, outcome, pos_a, pos_b, payload in qs.iterator(chunk_size=2000):
        responses = payload.get("responses") or []
        try:
            len_a = len(str(responses[pos_a].get("content") or ""))
            len_b = len(str(responses[pos_b].get("content") or ""))
        except (IndexError, AttributeError):
            continue
        yield (model_a, model_b, outcome, len_a, len_b)


# --- thumbs --------------------------------------------------------------------------------

BUCKETS = {"day": TruncDay, "week": TruncWeek}


def thumbs_counts(
    f: BattleFilter,
    *,
    model: str | None = None,
    checkpoint: str | None = None,
    bucket: str = "day",
) -> list[dict[str, Any]]:
    """Thumbs up and down per (model, checkpoint, day or week) in the slice."""
    qs = _sliced(Rating.objects.filter(value__in=[1, -1]), f)
    if model:
        qs = qs.filter(model=model)
    if checkpoint is not None and checkpoint != "":
        qs = qs.filter(checkpoint=checkpoint)
    trunc = BUCKETS[bucket]
    return list(
        qs.annotate(when=Coalesce("event__occurred_at", "created_at"))
        .annotate(period=trunc("when"))
        .order_by()
        .values("model", "checkpoint", "period")
        .annotate(up=Count("id", filter=Q(value=1)), down=Count("id", filter=Q(value=-1)))
        .order_by("model", "checkpoint", "period")
    )
