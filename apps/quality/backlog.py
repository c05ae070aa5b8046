"""The events still waiting for a verdict, found in the database (DESIGN 8: the broker only
carries hints), and judged in batches.

`quality_backlog_judge` drains the newest events without a current verdict: what the
`quality.judge_pending` hint (sent after ingest) and the periodic drain run. `quality_missing_judge`
sweeps the whole log: the reconciler (worker start-up, every few minutes) and
`manage.py requalify --missing`. Both lock the events they take (PostgreSQL, SKIP LOCKED), so two
workers never judge the same batch, and both look at each event once per run, so one event that
cannot be judged never holds back the others."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.db import connection, transaction
from django.db.models import Exists, Max, OuterRef, QuerySet

from apps.feedback.models import Event
from apps.quality.models import Verdict
from apps.quality.services import JudgeSummary, quality_events_judge

logger = logging.getLogger(__name__)

# How far behind the newest judged event a drain looks (ids commit out of order; a killed
# worker's batch rolls back whole). Older gaps are the sweep's.
LOOKBACK_IDS = 20_000
BATCH = 500


def events_without_verdict() -> QuerySet[Event]:
    """Events that have no current verdict."""
    return Event.objects.filter(
        ~Exists(Verdict.objects.filter(event_id=OuterRef("pk"), is_current=True))
    )


def _claim(queryset: QuerySet[Event], size: int) -> list[int]:
    ordered = queryset.order_by("id")
    if connection.features.has_select_for_update_skip_locked:
        ordered = ordered.select_for_update(skip_locked=True, no_key=True, of=("self",))
    return list(ordered.values_list("id", flat=True)[:size])


def _judge(ids: list[int], summary: JudgeSummary) -> None:
    """Judge IDS in one go; if that fails, one by one, so a poison event fails alone."""
    try:
        with transaction.atomic():
            summary.add(quality_events_judge(event_ids=ids))
        return
    except Exception:  # noqa: BLE001 - isolate the event that breaks the batch
        if len(ids) == 1:
            logger.exception("event cannot be judged", extra={"event_id": ids[0]})
            return
    for event_id in ids:
        _judge([event_id], summary)


def _drain(
    after: int,
    *,
    batch_size: int,
    progress: Callable[[int], None] | None,
    max_seconds: float | None = None,
) -> tuple[JudgeSummary, bool]:
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    summary = JudgeSummary()
    while True:
        with transaction.atomic():
            ids = _claim(events_without_verdict().filter(id__gt=after), batch_size)
            if not ids:
                return summary, False
            _judge(ids, summary)
        after = ids[-1]
        if progress is not None:
            progress(len(ids))
        if deadline is not None and time.monotonic() > deadline:
            return summary, True  # at least one batch per drain: each one makes progress


def quality_backlog_judge(
    *, batch_size: int = BATCH, max_seconds: float | None = None
) -> tuple[JudgeSummary, bool]:
    """Judge the newest events without a current verdict, BATCH_SIZE per transaction, until
    none is left or MAX_SECONDS have passed; return the summary and whether some may be left
    (the caller hints again: one drain never holds a worker the other queues wait for). A few
    index probes when there is nothing to do."""
    newest = Verdict.objects.aggregate(newest=Max("event_id"))["newest"] or 0
    return _drain(
        max(0, newest - LOOKBACK_IDS), batch_size=batch_size, progress=None, max_seconds=max_seconds
    )


def quality_missing_judge(
    *, batch_size: int = 2000, progress: Callable[[int], None] | None = None
) -> JudgeSummary:
    """Judge every event in the log that has no current verdict (and only those)."""
    return _drain(0, batch_size=batch_size, progress=progress)[0]
