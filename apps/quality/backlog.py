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
import threading
import time
from collections import deque
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


# -- how far behind the workers are (ingest's admission control reads it) ----------------------

# A web process looks at most once a SAMPLE_SECONDS, and measures the clearing rate over the
# samples of the last WINDOW_SECONDS: long enough to smooth one 500-event transaction, short
# enough to follow a burst.
SAMPLE_SECONDS = 1.0
WINDOW_SECONDS = 15.0

_samples: deque[tuple[float, int, int]] = deque()  # (monotonic s, newest event id, newest judged)
_samples_lock = threading.Lock()
_clock = time.monotonic


def judging_backlog() -> tuple[int, float | None]:
    """(events waiting for a verdict, events judged per second lately or None), as ingest's
    `pipeline_backlog` hook. Waiting = the newest event's id minus the newest judged event's
    (the drains judge in id order): two index probes, made at most once a second per process.
    The rate is how fast the newest judged id moved over the last WINDOW_SECONDS; None until two
    samples exist or when it did not move (no worker judging: nobody can say when it will)."""
    now = _clock()
    with _samples_lock:
        if not _samples or now - _samples[-1][0] >= SAMPLE_SECONDS:
            newest = Event.objects.aggregate(newest=Max("id"))["newest"] or 0
            judged = Verdict.objects.aggregate(newest=Max("event_id"))["newest"] or 0
            _samples.append((now, newest, judged))
            while len(_samples) > 2 and now - _samples[1][0] >= WINDOW_SECONDS:
                _samples.popleft()
        return backlog_estimate(list(_samples))


def backlog_estimate(samples: list[tuple[float, int, int]]) -> tuple[int, float | None]:
    """From (time, newest event id, newest judged id) samples, oldest first: the events waiting
    at the last sample, and the judged id's speed from the first sample to the last."""
    if not samples:
        return 0, None
    last = samples[-1]
    waiting = max(0, last[1] - last[2])
    first = samples[0]
    if last[0] - first[0] <= 0 or last[2] <= first[2]:
        return waiting, None
    return waiting, (last[2] - first[2]) / (last[0] - first[0])
