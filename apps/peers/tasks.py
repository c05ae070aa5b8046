"""Celery entry points of the connectors: they take ids, load the row, call a service.

`connectors.run_due` runs every minute from Celery beat (see config/celery.py) and queues
`connectors.openwebui_pull` for each connector whose interval has passed."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.peers.models import OpenWebUIConnector
from apps.peers.openwebui.services import openwebui_connector_pull
from apps.peers.services import connectors_run_due


@shared_task(name="connectors.run_due", ignore_result=True)
def run_due() -> list[int]:
    """Queue the pulls that are due; return the connector ids queued."""
    return connectors_run_due()


@shared_task(
    name="connectors.openwebui_pull",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=25 * 60,
    time_limit=30 * 60,
)
def openwebui_pull(connector_id: int, full: bool = False) -> dict[str, Any]:
    """Pull one Open WebUI connector's export. A remote failure is recorded on the connector
    (`last_error`) and retried by the next scheduled run, not by Celery: the schedule is the
    backoff, and a pull that runs twice adds nothing (event ids are deterministic)."""
    connector = (
        OpenWebUIConnector.objects.select_related("source")
        .filter(pk=connector_id, is_active=True)
        .first()
    )
    if connector is None:
        return {}
    return openwebui_connector_pull(connector=connector, full=full).as_dict()
