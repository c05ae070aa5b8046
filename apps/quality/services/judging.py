"""Judging events: the filters' verdicts, the signals they leave, and the raters' reputations.

A verdict is never edited: a new judgement adds a row and moves the event's `is_current` flag to
it, so the history of an event's verdicts stays readable. Judging is idempotent: an event whose
current verdict came from the same filter versions is skipped, and a forced re-judgement that
reaches the same outcome writes nothing. A curator's verdict stands until a curator changes it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import orjson
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.feedback.models import Event
from apps.feedback.selectors import unreadable_values
from apps.quality import conf
from apps.quality.filters import get_filters
from apps.quality.filters.base import Batch
from apps.quality.history import DbHistory
from apps.quality.models import EventSignal, RaterReputation, Verdict, VoteSignal
from apps.quality.pipeline import Judgement, judge, make_view, pipeline_version, versions_of
from apps.quality.text import bands, to_signed

FLAGGED = ("quarantined", "rejected")
_EVENT_FIELDS = (
    "id",
    "source_id",
    "type",
    "status",
    "payload",
    "rater_hash",
    "ip_hash",
    "occurred_at",
    "received_at",
)


@dataclass
class JudgeSummary:
    judged: int = 0
    written: int = 0
    skipped: int = 0
    changed: int = 0  # events whose status is not what it was
    by_status: Counter[str] = field(default_factory=Counter)

    def add(self, other: JudgeSummary) -> None:
        self.judged += other.judged
        self.written += other.written
        self.skipped += other.skipped
        self.changed += other.changed
        self.by_status.update(other.by_status)


def quality_events_judge(
    *,
    event_ids: Iterable[int],
    force: bool = False,
    only: list[str] | None = None,
    followups: bool = True,
) -> JudgeSummary:
    """Judge EVENT_IDS with today's filters and store a verdict for each.

    FORCE re-judges events that already have a verdict from the same filter versions; ONLY runs
    just those filters and keeps the other filters' results from the current verdict. Events a
    curator has decided are left alone. Earlier members of a flood found now are judged again
    (once) unless FOLLOWUPS is false."""
    ids = sorted(set(event_ids))
    summary = JudgeSummary()
    later: set[int] = set()
    size = conf.get("BATCH_SIZE")
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        try:
            part, more = _judge_chunk(chunk, force=force, only=only)
        except IntegrityError:
            # Another worker judged some of these at the same moment: look again.
            part, more = _judge_chunk(chunk, force=force, only=only)
        summary.add(part)
        later.update(more)
    later -= set(ids)
    if followups and later:
        later = _not_yet_flooded(later)
    if followups and later:
        summary.add(quality_events_judge(event_ids=sorted(later), force=True, followups=False))
    return summary


def _not_yet_flooded(event_ids: set[int]) -> set[int]:
    """Of EVENT_IDS (earlier members of a flood found now), those the flood filter has not
    flagged yet: the ones whose verdict a new look can change. A flood's earlier members that
    it flagged already keep their verdict; judging them again on every batch that adds a member
    made the work grow with the square of the flood's size."""
    judged = Verdict.objects.filter(event_id__in=event_ids, is_current=True)
    passed = set(judged.filter(filters__flood__action="pass").values_list("event_id", flat=True))
    has_verdict = set(judged.values_list("event_id", flat=True))
    return {eid for eid in event_ids if eid in passed or eid not in has_verdict}


def _judge_chunk(
    ids: list[int], *, force: bool, only: list[str] | None
) -> tuple[JudgeSummary, set[int]]:
    summary = JudgeSummary()
    events = [
        SimpleNamespace(**row)
        for row in Event.objects.filter(id__in=ids).values(*_EVENT_FIELDS).order_by("id")
    ]
    current: dict[int, dict[str, Any]] = {
        row["event_id"]: dict(row)
        for row in Verdict.objects.filter(event_id__in=ids, is_current=True).values(
            "id", "event_id", "status", "score", "reasons", "filters", "pipeline_version", "origin"
        )
    }
    every = get_filters()
    probe = Batch(events=[], history=DbHistory())
    full_version = pipeline_version(versions_of(every, probe))
    todo = []
    for event in events:
        verdict = current.get(event.id)
        if verdict is not None and (
            verdict["origin"] == Verdict.Origin.CURATOR
            or (not force and verdict["pipeline_version"] == full_version)
        ):
            summary.skipped += 1
            continue
        todo.append(event)
    if not todo:
        return summary, set()
    views = [
        make_view(
            id=e.id,
            source_id=e.source_id,
            payload=e.payload,
            rater_hash=e.rater_hash,
            ip_hash=e.ip_hash,
            status=e.status,
            occurred_at=e.occurred_at,
            received_at=e.received_at,
            unreadable=unreadable_values(e.payload, e.occurred_at),
        )
        for e in todo
    ]
    previous = {eid: row["filters"] for eid, row in current.items()} if only else None
    judgements, batch = judge(
        views,
        history=DbHistory(),
        only=only,
        previous=previous,
        state={"classifier.model": probe.state.get("classifier.model")},
    )
    followups: set[int] = set()
    with transaction.atomic():
        writes = []
        for view, judgement in zip(views, judgements, strict=True):
            old = current.get(view.id)
            summary.judged += 1
            summary.by_status[judgement.status] += 1
            followups.update(judgement.followups)
            if old is not None and judgement.same_outcome(old):
                continue
            if old is None or old["status"] != judgement.status:
                summary.changed += 1
            writes.append((view, judgement, old))
        _store_verdicts(writes)
        _store_signals(views, judgements, batch)
        _update_reputations(views, writes, batch)
        summary.written += len(writes)
    return summary, followups


def _insert_many(
    model: Any,
    columns: list[str],
    rows: list[tuple[Any, ...]],
    *,
    json: tuple[str, ...] = (),
    upsert_on: str | None = None,
) -> None:
    """INSERT ROWS into MODEL's table in one executemany: the hot path writes a verdict and a
    signal per event, and the ORM's bulk_create spends more time building objects than the
    database spends storing them. UPSERT_ON turns a conflict on that column into an update."""
    if not rows:
        return
    quote = connection.ops.quote_name
    cast = "::jsonb" if connection.vendor == "postgresql" else ""
    values = ", ".join(f"%s{cast}" if column in json else "%s" for column in columns)
    # Names come from the models, quoted; every value is a parameter.
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(map(quote, columns))}) VALUES ({values})"  # noqa: S608
    if upsert_on:
        updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns if c != upsert_on)
        sql += f" ON CONFLICT ({quote(upsert_on)}) DO UPDATE SET {updates}"
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _store_verdicts(writes: list[tuple[Any, Judgement, dict[str, Any] | None]]) -> None:
    retired = [old["id"] for _, _, old in writes if old is not None]
    if retired:
        Verdict.objects.filter(id__in=retired).update(is_current=False)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    _insert_many(
        Verdict,
        [
            "event_id",
            "status",
            "score",
            "trust_weight",
            "reasons",
            "filters",
            "pipeline_version",
            "origin",
            "is_current",
            "created_at",
        ],
        [
            (
                j.event_id,
                j.status,
                j.score,
                j.trust_weight,
                orjson.dumps(j.reasons).decode(),
                orjson.dumps(j.filters).decode(),
                j.pipeline_version,
                Verdict.Origin.PIPELINE,
                True,
                now,
            )
            for _, j, _ in writes
        ],
        json=("reasons", "filters"),
    )


def _store_signals(views: list[Any], judgements: list[Judgement], batch: Batch) -> None:
    status = {j.event_id: j.status for j in judgements}
    adapt = connection.ops.adapt_datetimefield_value
    rows = []
    for view in views:
        split = bands(view.simhash) if view.simhash is not None else (None, None, None, None)
        rows.append(
            (
                view.id,
                view.source_id,
                view.rater_hash,
                view.ip_hash,
                adapt(view.at),
                adapt(view.received_at),
                view.is_vote,
                None if view.simhash is None else to_signed(view.simhash),
                view.exact,
                *split,
            )
        )
    _insert_many(
        EventSignal,
        [
            "event_id",
            "source_id",
            "rater_hash",
            "ip_hash",
            "at",
            "received_at",
            "is_vote",
            "simhash",
            "exact",
            "band0",
            "band1",
            "band2",
            "band3",
        ],
        rows,
        upsert_on="event_id",
    )
    votes = [view for view in views if view.votes]
    if votes:
        logp = (batch.state.get("reputation") or {}).get("logp", {})
        VoteSignal.objects.filter(event_id__in=[v.id for v in votes]).delete()
        _insert_many(
            VoteSignal,
            [
                "event_id",
                "rater_hash",
                "model_lo",
                "model_hi",
                "outcome",
                "neg2logp",
                "counted",
                "at",
            ],
            [
                (
                    v.id,
                    v.rater_hash,
                    lo,
                    hi,
                    outcome,
                    (logp.get(v.id) or [None] * len(v.votes))[index],
                    status[v.id] == "accepted",
                    adapt(v.at),
                )
                for v in votes
                for index, (lo, hi, outcome) in enumerate(v.votes)
            ],
        )


def _trust(events: int, flagged: int, outlier: bool) -> float:
    # Laplace-smoothed share of the rater's events that stood, a fifth of it for an outlier.
    share = (events - flagged + 2) / (events + 2)
    return round(max(0.0, min(1.0, share * (0.2 if outlier else 1.0))), 4)


def _update_reputations(
    views: list[Any],
    writes: list[tuple[Any, Judgement, dict[str, Any] | None]],
    batch: Batch | None,
) -> None:
    deltas: dict[str, list[int]] = {}  # rater → [events, flagged, votes]
    sources: dict[str, int] = {}
    for view, judgement, old in writes:
        if not view.rater_hash:
            continue
        delta = deltas.setdefault(view.rater_hash, [0, 0, 0])
        sources[view.rater_hash] = view.source_id
        was_flagged = old is not None and old["status"] in FLAGGED
        delta[1] += int(judgement.status in FLAGGED) - int(was_flagged)
        if old is None:
            delta[0] += 1
            delta[2] += int(view.is_vote)
    tests: dict[str, tuple[float, int]] = {}
    if batch is not None:
        by_event = (batch.state.get("reputation") or {}).get("test", {})
        for view in sorted(views, key=lambda v: v.id):
            if view.id in by_event and view.rater_hash:
                tests[view.rater_hash] = by_event[view.id]
    raters = set(deltas) | set(tests)
    if not raters:
        return
    from apps.quality.filters.reputation import alpha_at

    existing = {
        r.rater_hash: r
        for r in RaterReputation.objects.select_for_update()
        .filter(rater_hash__in=raters)
        .order_by("rater_hash")
    }
    now = timezone.now()
    changed, created = [], []
    for rater in sorted(raters):
        rep = existing.get(rater)
        if rep is None:
            source_id = sources.get(rater) or next(
                v.source_id for v in views if v.rater_hash == rater
            )
            rep = RaterReputation(rater_hash=rater, source_id=source_id)
            created.append(rep)
        else:
            changed.append(rep)
        events, flagged, votes = deltas.get(rater, [0, 0, 0])
        rep.events += events
        rep.flagged = max(0, min(rep.events, rep.flagged + flagged))
        rep.votes += votes
        if rater in tests:
            p, j = tests[rater]
            rep.outlier_p = p
            rep.outlier = p < alpha_at(j)
        rep.trust = _trust(rep.events, rep.flagged, rep.outlier)
        rep.updated_at = now
    if created:
        RaterReputation.objects.bulk_create(created, batch_size=500, ignore_conflicts=True)
    if changed:
        # One statement, many parameter rows: bulk_update's CASE per field and row costs more
        # than judging the events does.
        table = connection.ops.quote_name(RaterReputation._meta.db_table)
        adapt = connection.ops.adapt_datetimefield_value
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET events = %s, flagged = %s, votes = %s, outlier = %s, outlier_p = %s, "  # noqa: S608
                "trust = %s, updated_at = %s WHERE id = %s",
                [
                    (
                        r.events,
                        r.flagged,
                        r.votes,
                        r.outlier,
                        r.outlier_p,
                        r.trust,
                        adapt(r.updated_at),
                        r.pk,
                    )
                    for r in changed
                ],
            )
