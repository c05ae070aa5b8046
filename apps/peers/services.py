"""What the connectors share: feeding mapped events to `feedback_ingest` and counting them the
way imports do (`ImportSummary`), and the periodic `connectors_run_due` that Celery beat calls
every minute."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.peers.models import OpenWebUIConnector

logger = logging.getLogger(__name__)


def connectors_run_due(*, now: datetime | None = None) -> list[int]:
    """Queue a pull for every active Open WebUI connector whose time has come, and move its
    next run on by its interval; return their ids. Each connector is claimed with a conditional
    update, so two schedulers (or a run that overlaps the next) queue it once. Also forgets
    Langfuse trace texts past their keeping time."""
    from apps.peers.langfuse.services import langfuse_context_purge
    from apps.peers.tasks import openwebui_pull

    now = now or timezone.now()
    due = (
        OpenWebUIConnector.objects.filter(is_active=True)
        .filter(Q(next_run_at__isnull=True) | Q(next_run_at__lte=now))
        .values_list("pk", "interval_minutes", "next_run_at")
    )
    queued = []
    for pk, interval, next_run_at in due:
        same = Q(next_run_at__isnull=True) if next_run_at is None else Q(next_run_at=next_run_at)
        claimed = OpenWebUIConnector.objects.filter(same, pk=pk).update(
            next_run_at=now + timedelta(minutes=interval)
        )
        if claimed:
            transaction.on_commit(lambda pk=pk: openwebui_pull.delay(pk))
            queued.append(pk)
    purged = langfuse_context_purge()
    if queued or purged:
        logger.info("connectors run", extra={"queued": queued, "purged_trace_texts": purged})
    return queued
