"""Readiness checks: is the database answering, are the Celery broker and the rate limits'
Redis reachable.

Only the database is essential: without it nothing is stored (503 `unavailable`). Without the
broker or Redis, ingest still stores and acknowledges every event (the rate limits count per
process, the workers catch up from the database once the broker is back), so /readyz answers
200 `degraded` with the problems named: keep sending traffic, and fix it."""

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


def check_cache() -> str | None:
    """The rate limits' Redis (CACHE_URL), where there is one: PING with a short timeout."""
    from django.core.cache import cache

    backend = getattr(cache, "_cache", None)
    if not hasattr(backend, "get_client"):
        return None  # process memory (embedded): nothing to reach
    try:
        backend.get_client(write=True).ping()
    except Exception as exc:  # any client error means "not reachable"
        return f"cache: {exc.__class__.__name__}: {exc}"
    return None


def readiness() -> tuple[int, dict[str, object]]:
    """(HTTP status, body) for /readyz: 503 `unavailable` without the database; 200 `degraded`
    when only the broker or Redis is missing (ingest goes on); 200 `ok` when all answer."""
    essential = check_database()
    optional = [p for p in (check_broker(), check_cache()) if p]
    if essential:
        return 503, {"status": "unavailable", "problems": [essential, *optional]}
    if optional:
        return 200, {"status": "degraded", "problems": optional}
    return 200, {"status": "ok"}
