"""Celery entry points of curation (queue `default`)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="curation.index_search", acks_late=True, time_limit=600)
def index_search(limit: int = 20_000) -> int:
    """Store full-text documents for new events (run it every few seconds from beat)."""
    from apps.curation.search import search_index_catch_up

    total = 0
    while stored := search_index_catch_up(limit=limit):
        total += stored
        if stored < limit:
            break
    return total
