"""Celery entry points of the quality app (queue `quality`, routed in config/celery.py): they
call a service and own retries. Which events to judge is read from the database: a message is
only a hint. Periodic work is scheduled in config/celery.py."""

from __future__ import annotations

from celery import shared_task

# How long one drain may hold a worker (a worker often serves several queues).
DRAIN_SECONDS = 3.0
_RETRY = {"max_retries": 5, "autoretry_for": (Exception,), "retry_backoff": True}


@shared_task(name="quality.judge_pending", acks_late=True, time_limit=600, **_RETRY)
def judge_pending() -> dict[str, int]:
    """Judge every new event that has no verdict yet (the hint sent after ingest)."""
    from apps.quality.backlog import quality_backlog_judge
    from config.celery import hint_taken, send_hint

    hint_taken("quality.judge_pending")
    summary, more = quality_backlog_judge(max_seconds=DRAIN_SECONDS)
    if more:  # some are left: hint again, behind what the other queues hold
        send_hint("quality.judge_pending", now=True)
    return {"judged": summary.judged, "written": summary.written, "skipped": summary.skipped}


@shared_task(name="quality.reconcile", acks_late=True, time_limit=3600, **_RETRY)
def reconcile() -> dict[str, int]:
    """Sweep the whole log for events without a current verdict (worker start-up, every 5 min)."""
    from apps.quality.backlog import quality_missing_judge

    summary = quality_missing_judge()
    return {"judged": summary.judged, "written": summary.written, "skipped": summary.skipped}


@shared_task(name="quality.judge_events", acks_late=True, **_RETRY)
def judge_events(event_ids: list[int]) -> dict[str, int]:
    """Judge these events (earlier releases sent one message per request; still honoured)."""
    from apps.quality.services import quality_events_judge

    summary = quality_events_judge(event_ids=event_ids)
    return {"judged": summary.judged, "written": summary.written, "skipped": summary.skipped}


@shared_task(
    name="quality.requalify", acks_late=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 60
)
def requalify(job_id: int) -> str:
    """Run or resume a replay job; a job that dies can be resumed from its cursor."""
    from apps.quality.services import requalify_job_run

    return requalify_job_run(job_id=job_id).status


@shared_task(name="quality.retrain_classifier", acks_late=True, time_limit=3600)
def retrain_classifier() -> int | None:
    """Periodic: train a new classifier version when enough curator labels arrived."""
    from apps.quality.services import classifier_train

    row = classifier_train()
    return row.version if row else None
