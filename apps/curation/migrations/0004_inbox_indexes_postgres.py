"""PostgreSQL-only indexes that keep the inbox fast on millions of events (bench/inbox.py):

- payload tags: GIN on `payload -> 'tags'` (jsonb containment `@>`);
- date range: btree on `received_at`;
- the current verdict by event with its status and score (status / spam-score filters);
- live curator accept/reject decisions by event (decision filter, latest judgement).

SQLite keeps the indexes the models declare; these are skipped there."""

from django.db import migrations

INDEXES = [
    (
        "inbox_event_tags",
        "CREATE INDEX IF NOT EXISTS inbox_event_tags ON feedback_event "
        "USING gin ((payload -> 'tags'))",
    ),
    (
        "inbox_event_received",
        "CREATE INDEX IF NOT EXISTS inbox_event_received ON feedback_event (received_at)",
    ),
    (
        "inbox_verdict_current",
        "CREATE INDEX IF NOT EXISTS inbox_verdict_current ON quality_verdict "
        "(event_id, status, score) WHERE is_current",
    ),
    (
        "inbox_decision_live",
        "CREATE INDEX IF NOT EXISTS inbox_decision_live ON curation_decision (event_id, id) "
        "WHERE undone_at IS NULL AND action IN ('accept', 'reject')",
    ),
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for _, sql in INDEXES:
        schema_editor.execute(sql)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _ in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("curation", "0003_roles"),
        ("feedback", "0003_ratertombstone"),
        ("quality", "0001_initial"),
    ]

    operations = [migrations.RunPython(create, drop)]
