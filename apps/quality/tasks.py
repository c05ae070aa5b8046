"""Celery entry points of the quality app, all on the `quality` queue: they take ids, call a
service, and own retries. Periodic retraining is scheduled in config/celery.py."""

from __future__ import annotations

from celery import shared_task


@shared_task(
    name="quality.judge_events",
    queue="quality",
    acks_late=True,
    max_retries=5,
    autoretry_for=(Exception,),
    retry_backoff=True,
)
def judge_events(event_ids: list[int]) -> dict[str, int]:
    """Judge freshly stored events (enqueued after the ingest transaction commits)."""
    from apps.quality.services import quality_events_judge

    summary = quality_events_judge(event_ids=event_ids)
    return {"judged": summary.judged, "written": summary.written, "skipped": summary.skipped}


@shared_task(
    name="quality.requalify",
    queue="quality",
    acks_late=True,
    soft_time_limit=6 * 3600,
    time_limit=6 * 3600 + 60,
)
def requalify(job_id: int) -> str:
    """Run or resume a replay job; a job that dies can be resumed from its cursor."""
    from apps.quality.services import requalify_job_run

    return requalify_job_run(job_id=job_id).status


@shared_task(name="quality.retrain_classifier", queue="quality", acks_late=True, time_limit=3600)
def retrain_classifier() -> int | None:
    """Periodic: train a new classifier version when enough curator labels arrived."""
    from apps.quality.services import classifier_train

    row = classifier_train()
    return row.version if row else None
