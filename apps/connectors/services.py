"""What the connectors share: feeding mapped events to `feedback_ingest` and counting them the
way imports do (`ImportSummary`), and the periodic `connectors_run_due` that Celery beat calls
every minute."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.connectors.models import OpenWebUIConnector
from apps.feedback.services.importing import ImportSummary
from apps.feedback.services.ingest import (
    ACCEPTED,
    DUPLICATE,
    QUARANTINED,
    ItemResult,
    feedback_ingest,
)
from apps.sources.models import Source

logger = logging.getLogger(__name__)


def events_ingest(
    *, source: Source, events: list[dict[str, Any]], places: list[str], summary: ImportSummary
) -> None:
    """Store EVENTS (mapped by an importer's reader; PLACES says where each came from) through
    `feedback_ingest`, and count them into SUMMARY: new, duplicate, or rejected with a reason."""
    if not events:
        return
    results = feedback_ingest(source=source, items=events)
    for result, where in zip(results, places, strict=True):
        if result.status in (ACCEPTED, QUARANTINED):
            summary.imported += 1
            summary.quarantined += result.status == QUARANTINED
        elif result.status == DUPLICATE:
            summary.duplicate += 1
        else:
            summary.reject(f"{where}: {_errors(result)}")


def _errors(result: ItemResult) -> str:
    if not result.errors:
        return result.code or "invalid"
    return "; ".join(f"{path}: {' '.join(messages)}" for path, messages in result.errors.items())


def connectors_run_due(*, now: datetime | None = None) -> list[int]:
    """Queue a pull for every active Open WebUI connector whose time has come, and move its
    next run on by its interval; return their ids. Each connector is claimed with a conditional
    update, so two schedulers (or a run that overlaps the next) queue it once. Also forgets
    Langfuse trace texts past their keeping time."""
    from apps.connectors.langfuse.services import langfuse_context_purge
    from apps.connectors.tasks import openwebui_pull

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
