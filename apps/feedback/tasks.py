"""Celery entry points of the feedback app (queue `ingest`, routed in config/celery.py): they
call a service. The work to do is read from the database, never from the message: a message
is only a hint, and one that is lost, repeated or late changes nothing but when it happens."""

from __future__ import annotations

from celery import shared_task

from apps.feedback.services.normalize import (
    feedback_backlog_normalize,
    feedback_events_normalize,
    feedback_pending_normalize,
)

# How long one drain may hold a worker: a worker that serves several queues (`make run` has
# one) takes the others' messages in between.
DRAIN_SECONDS = 3.0
_RETRY = {"max_retries": 5, "autoretry_for": (Exception,), "retry_backoff": True}


@shared_task(name="feedback.normalize_pending", acks_late=True, time_limit=600, **_RETRY)
def normalize_pending() -> int:
    """Derive the rows of every new event that has none yet (the hint ingest sends), for a few
    seconds at most; if some are left, hint again, behind what the other queues hold."""
    from config.celery import hint_taken, send_hint

    hint_taken("feedback.normalize_pending")
    done, more = feedback_backlog_normalize(max_seconds=DRAIN_SECONDS)
    if more:
        send_hint("feedback.normalize_pending", now=True)
    return done


@shared_task(name="feedback.reconcile", acks_late=True, time_limit=3600, **_RETRY)
def reconcile() -> int:
    """Sweep the whole log for events without derived rows (worker start-up, every 5 min)."""
    return feedback_pending_normalize()


@shared_task(name="feedback.normalize_events", acks_late=True, **_RETRY)
def normalize_events(event_ids: list[int]) -> int:
    """Derive the rows of these events (messages sent by earlier releases; still honoured)."""
    return feedback_events_normalize(event_ids=event_ids)
