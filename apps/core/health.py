"""Readiness checks: is the database answering, is the Celery broker reachable."""

from __future__ import annotations

import logging
import os
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

    url = app.conf.broker_url or ""
    if url.startswith("filesystem://"):
        # The embedded broker always "connects"; what can fail is writing a message file.
        folder = Path((app.conf.broker_transport_options or {}).get("data_folder_out", ""))
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            return f"broker: the queue folder {str(folder)!r} is missing or not writable"
        return None
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # kombu raises a zoo of transport errors
        return f"broker: {exc.__class__.__name__}: {exc}"
    return None


def queue_depths() -> dict[str, int]:
    """Messages waiting per queue: counted with LLEN on Redis, as files in the embedded broker."""
    from config.celery import app

    queues = settings.CELERY_WORKER_QUEUES
    url = app.conf.broker_url or ""
    try:
        if url.startswith("filesystem://"):
            folder = Path(app.conf.broker_transport_options["data_folder_in"])
            files = [p.name for p in folder.glob("*.msg")] if folder.exists() else []
            return {q: sum(1 for name in files if name.endswith(f".{q}.msg")) for q in queues}
        if url.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(url, socket_timeout=1)
            try:
                return {q: int(client.llen(q)) for q in queues}
            finally:
                client.close()
    except Exception as exc:  # metrics must never take the endpoint down
        logger.warning("queue depth unavailable", extra={"error": str(exc)})
    return {}
