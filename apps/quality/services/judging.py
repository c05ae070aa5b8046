"""Writes of the quality app: judging events, curators overruling verdicts, training the
classifier, and replaying history.

A verdict is never edited: a new judgement adds a row and moves the event's `is_current` flag to
it, so the history of an event's verdicts stays readable. Judging is idempotent: an event whose
current verdict came from the same filter versions is skipped, and a forced re-judgement that
reaches the same outcome writes nothing. A curator's verdict stands until a curator changes it."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import orjson
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.feedback.models import Event
from apps.quality import conf
from apps.quality.filters import get_filters
from apps.quality.filters.base import Batch
from apps.quality.history import DbHistory
from apps.quality.models import (
    CuratorLabel,
    EventSignal,
    RaterReputation,
    RequalifyJob,
    SpamClassifier,
    Verdict,
    VerdictOverride,
    VoteSignal,
)
from apps.quality.pipeline import (
    ACTION_OF,
    Judgement,
    judge,
    make_view,
    pipeline_version,
    versions_of,
)
from apps.quality.text import bands, event_texts, to_signed

logger = logging.getLogger(__name__)

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
        summary.add(quality_events_judge(event_ids=sorted(later), force=True, followups=False))
    return summary


def _judge_chunk(
    ids: list[int], *, force: bool, only: list[str] | None
) -> tuple[JudgeSummary, set[int]]:
    summary = JudgeSummary()
    events = [
        SimpleNamespace(**row)
        for row in Event.objects.filter(id__in=ids).values(*_EVENT_FIELDS).order_by("id")
    ]
    current = {
        row["event_id"]: row
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


# --- curators ------------------------------------------------------------------------------------


def verdict_override(
    *,
    event_id: int,
    status: str,
    curator: Any = None,
    note: str = "",
    label: str | None = None,
) -> Verdict:
    """A curator sets EVENT_ID's status, overruling the filters. The event's rater text becomes a
    training label for the classifier: LABEL, or by default ham when accepted and spam when not."""
    if status not in Verdict.Status.values:
        raise ValueError(f"status must be one of {', '.join(Verdict.Status.values)}")
    if label is not None and label not in CuratorLabel.Label.values:
        raise ValueError("label must be 'spam' or 'ham'")
    with transaction.atomic():
        event = Event.objects.only(*_EVENT_FIELDS).get(pk=event_id)
        old = Verdict.objects.select_for_update().filter(event=event, is_current=True).first()
        if old is not None:
            old.is_current = False
            old.save(update_fields=["is_current"])
        who = getattr(curator, "username", "") or "a curator"
        sentence = f"{who} set this to {status}" + (f": {note}" if note else ".")
        verdict = Verdict(
            event=event,
            status=status,
            score=0.0 if status == "accepted" else 1.0,
            trust_weight=1.0 if status == "accepted" else 0.0,
            reasons=[{"code": "curator.override", "message": sentence, "filter": "curator"}],
            filters={"curator": {"version": "1", "action": ACTION_OF[status]}},
            pipeline_version=old.pipeline_version if old else "curator",
            origin=Verdict.Origin.CURATOR,
            curator=curator,
        )
        verdict.full_clean()
        verdict.save()
        override = VerdictOverride(
            event=event, overruled=old, verdict=verdict, status=status, note=note, curator=curator
        )
        override.full_clean()
        override.save()
        text = event_texts(event.payload).rater_text.strip()
        if text:
            CuratorLabel.objects.create(
                text=text,
                label=label or ("ham" if status == "accepted" else "spam"),
                origin=CuratorLabel.Origin.OVERRIDE,
                event=event,
                override=override,
                curator=curator,
            )
        view = make_view(
            id=event.id,
            source_id=event.source_id,
            payload=event.payload,
            rater_hash=event.rater_hash,
            ip_hash=event.ip_hash,
            status=event.status,
            occurred_at=event.occurred_at,
            received_at=event.received_at,
        )
        before = None if old is None else {"status": old.status}
        judgement = Judgement(
            event_id=event.id,
            status=status,
            score=verdict.score,
            trust_weight=verdict.trust_weight,
            reasons=verdict.reasons,
            filters={},
            pipeline_version="",
        )
        _update_reputations([view], [(view, judgement, before)], None)
        if view.votes:
            VoteSignal.objects.filter(event_id=event.id).update(counted=status == "accepted")
    return verdict


def curator_label_add(
    *, text: str, label: str, curator: Any = None, event_id: int | None = None
) -> CuratorLabel:
    """A curator's spam/ham judgement on a text without overruling any verdict (e.g. a review)."""
    row = CuratorLabel(
        text=text.strip(),
        label=label,
        origin=CuratorLabel.Origin.REVIEW,
        event_id=event_id,
        curator=curator,
    )
    row.full_clean()
    row.save()
    return row


# --- the classifier ------------------------------------------------------------------------------


def classifier_train(
    *, force: bool = False, min_new_labels: int | None = None, seed: int = 0
) -> SpamClassifier | None:
    """Train a new classifier version on the seed corpus plus every curator label (the newest
    label of a text wins) and make it the active one. Without FORCE nothing happens until
    MIN_NEW_LABELS labels (default `QUALITY_RETRAIN_MIN_NEW_LABELS`) arrived since the active version."""
    from apps.quality import spam_model

    active = SpamClassifier.objects.filter(is_active=True).only("version", "last_label_id").first()
    newest = CuratorLabel.objects.order_by("-id").values_list("id", flat=True).first() or 0
    wanted = conf.get("RETRAIN_MIN_NEW_LABELS") if min_new_labels is None else min_new_labels
    if not force:
        fresh = CuratorLabel.objects.filter(id__gt=active.last_label_id if active else 0).count()
        if fresh < max(1, wanted):
            return None
    labelled: dict[str, bool] = {}
    for text, label in CuratorLabel.objects.order_by("id").values_list("text", "label"):
        labelled[text] = label == "spam"
    seed_rows = spam_model.seed_corpus()
    texts = [t for t, _ in seed_rows] + list(labelled)
    labels = [s for _, s in seed_rows] + list(labelled.values())
    in_domain = [False] * len(seed_rows) + [True] * len(labelled)
    version = (
        SpamClassifier.objects.order_by("-version").values_list("version", flat=True).first() or 0
    ) + 1
    model = spam_model.train(texts, labels, version=f"v{version}", in_domain=in_domain, seed=seed)
    counts = Counter(
        ("curator" if d else "seed") + ("_spam" if s else "_ham")
        for d, s in zip(in_domain, labels, strict=True)
    )
    with transaction.atomic():
        SpamClassifier.objects.filter(is_active=True).update(is_active=False)
        row = SpamClassifier(
            version=version,
            is_active=True,
            artifact=model.dumps(),
            threshold=model.threshold,
            trained_on=dict(counts),
            metrics=model.metrics,
            last_label_id=newest,
        )
        row.full_clean(exclude=["artifact"])
        row.save()
    logger.info(
        "trained spam classifier",
        extra={"version": version, "trained_on": dict(counts), "metrics": model.metrics},
    )
    return row


# --- replay --------------------------------------------------------------------------------------


def requalify_job_create(
    *, since: datetime | None = None, filter_names: list[str] | None = None
) -> RequalifyJob:
    """A job that re-judges every event (received SINCE) with today's filters (or FILTER_NAMES)."""
    names = sorted(set(filter_names or []))
    get_filters(names)  # unknown names fail here, before anything is queued
    job = RequalifyJob(since=since, filter_names=names)
    job.full_clean()
    job.save()
    return job


def requalify_job_run(
    *, job_id: int, chunk_size: int = 2000, progress: Callable[[RequalifyJob], None] | None = None
) -> RequalifyJob:
    """Run (or resume) a replay job from its cursor, chunk by chunk, saving progress after each;
    it stops between chunks when the job is cancelled."""
    job = RequalifyJob.objects.get(pk=job_id)
    if job.status in (RequalifyJob.Status.DONE, RequalifyJob.Status.CANCELLED):
        return job
    events = Event.objects.all()
    if job.since is not None:
        events = events.filter(received_at__gte=job.since)
    job.status, job.error = RequalifyJob.Status.RUNNING, ""
    job.started_at = job.started_at or timezone.now()
    if not job.total:
        job.total = events.count()
    job.save(update_fields=["status", "error", "started_at", "total"])
    try:
        while True:
            ids = list(
                events.filter(id__gt=job.cursor)
                .order_by("id")
                .values_list("id", flat=True)[:chunk_size]
            )
            if not ids:
                break
            summary = quality_events_judge(
                event_ids=ids, force=True, only=job.filter_names or None, followups=False
            )
            job.cursor, job.done, job.changed = (
                ids[-1],
                job.done + len(ids),
                job.changed + summary.changed,
            )
            job.save(update_fields=["cursor", "done", "changed"])
            if progress is not None:
                progress(job)
            if RequalifyJob.objects.filter(
                pk=job.pk, status=RequalifyJob.Status.CANCELLED
            ).exists():
                job.status = RequalifyJob.Status.CANCELLED
                return job
    except Exception as exc:
        job.status, job.error = RequalifyJob.Status.FAILED, f"{type(exc).__name__}: {exc}"
        job.save(update_fields=["status", "error"])
        raise
    job.status, job.finished_at = RequalifyJob.Status.DONE, timezone.now()
    job.save(update_fields=["status", "finished_at"])
    return job


def requalify_job_cancel(*, job_id: int) -> RequalifyJob:
    job = RequalifyJob.objects.get(pk=job_id)
    if job.status in (RequalifyJob.Status.QUEUED, RequalifyJob.Status.RUNNING):
        job.status = RequalifyJob.Status.CANCELLED
        job.save(update_fields=["status"])
    return job
