"""Full-text search documents for the inbox (PostgreSQL).

A search must never compute `to_tsvector` per row at query time (a quarter of a millisecond per
event: seconds over a million), so each event's document is stored once in `EventSearch` with a
GIN index. `search_index_catch_up` fills in events that have none yet, newest ids last; the
`curation.index_search` task runs it (schedule it every few seconds), and a search runs it inline
first when only a small tail is missing, so fresh feedback is findable at once. The log stays
append-only: documents are derived rows beside it and can be rebuilt (`--rebuild`)."""

from __future__ import annotations

from django.db import connection, transaction

INLINE_TAIL = 2000  # a search indexes at most this many missing events itself
LOOK_BACK = 1000  # ids committed out of order near the top are picked up again
FTS_CONFIG = "english"


def search_index_catch_up(*, limit: int = 20_000) -> int:
    """Store documents for up to LIMIT events that have none, oldest first; how many it stored."""
    if connection.vendor != "postgresql":
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO curation_eventsearch (event_id, document)
            SELECT e.id, to_tsvector('{FTS_CONFIG}'::regconfig, e.payload)
            FROM feedback_event e
            WHERE e.id > GREATEST(
                    COALESCE((SELECT max(event_id) FROM curation_eventsearch), 0) - %s, 0)
              AND NOT EXISTS (SELECT 1 FROM curation_eventsearch s WHERE s.event_id = e.id)
            ORDER BY e.id
            LIMIT %s
            ON CONFLICT (event_id) DO NOTHING
            """,  # noqa: S608 (FTS_CONFIG is a constant; values are parameters)
            [LOOK_BACK, limit],
        )
        return cursor.rowcount


def search_backlog() -> int:
    """About how many events have no document yet (by id distance: cheap)."""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE((SELECT max(id) FROM feedback_event), 0) - "
            "COALESCE((SELECT max(event_id) FROM curation_eventsearch), 0)"
        )
        return max(0, int(cursor.fetchone()[0]))


def search_ready() -> int:
    """Before a search: index a small missing tail inline, else leave it to the task (and wake
    it). Returns the backlog left."""
    backlog = search_backlog()
    if backlog == 0:
        return 0
    if backlog <= INLINE_TAIL:
        search_index_catch_up(limit=INLINE_TAIL + LOOK_BACK)
        return 0
    from apps.curation.tasks import index_search

    transaction.on_commit(lambda: index_search.delay(), robust=True)
    return backlog


def search_rebuild() -> int:
    """Throw every document away and index everything again (after changing FTS_CONFIG)."""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE curation_eventsearch")
    total = 0
    while stored := search_index_catch_up(limit=50_000):
        total += stored
    return total
