"""Celery entry points of the feedback app: they take ids and call a service."""

from __future__ import annotations

from celery import shared_task

from apps.feedback.services.normalize import feedback_events_normalize


@shared_task(
    name="feedback.normalize_events",
    queue="ingest",
    acks_late=True,
    max_retries=5,
    autoretry_for=(Exception,),
    retry_backoff=True,
)
def normalize_events(event_ids: list[int]) -> int:
    """Derive interactions, ratings and comparisons for freshly ingested events."""
    return feedback_events_normalize(event_ids=event_ids)
