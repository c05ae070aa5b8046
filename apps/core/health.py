"""Readiness checks: is the database answering, is the Celery broker reachable."""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)


def check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not ready"
        return f"database: {exc.__class__.__name__}: {exc}"
    return None


def check_broker() -> str | None:
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # kombu raises a zoo of transport errors
        return f"broker: {exc.__class__.__name__}: {exc}"
    return None


def queue_depths() -> dict[str, int]:
    """Messages waiting per queue: counted with LLEN on Redis, as files in the embedded broker."""
    queues = settings.CELERY_WORKER_QUEUES
    url = settings.CELERY_BROKER_URL
    try:
        if url.startswith("filesystem://"):
            folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
            files = [p.name for p in folder.glob("*.msg")] if folder.exists() else []
            return {q: sum(1 for name in files if name.endswith(f".{q}.msg")) for q in queues}
        if url.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(url, socket_timeout=1)
            return {q: int(client.llen(q)) for q in queues}
    except Exception as exc:  # metrics must never take the endpoint down
        logger.warning("queue depth unavailable", extra={"error": str(exc)})
    return {}
