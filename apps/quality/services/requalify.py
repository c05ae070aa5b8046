"""Replaying history: a requalify job judges a range of stored events again with the current
filters, in chunks, and can be cancelled."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.utils import timezone

from apps.feedback.models import Event
from apps.quality.filters import get_filters
from apps.quality.models import RequalifyJob
from apps.quality.services.judging import quality_events_judge


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
