"""The raw event log is append-only, and the database says so: UPDATE is refused on every
engine; DELETE is refused on PostgreSQL (test teardown there uses TRUNCATE, which row triggers
do not see; on SQLite Django's flush deletes rows, so only UPDATE is guarded)."""

from django.db import migrations

PG_FORWARD = """
CREATE OR REPLACE FUNCTION feedback_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'feedback_event is append-only: add verdicts, decisions or tombstones beside it';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER feedback_event_no_update BEFORE UPDATE OR DELETE ON feedback_event
    FOR EACH ROW EXECUTE FUNCTION feedback_event_append_only();
"""
PG_BACKWARD = """
DROP TRIGGER IF EXISTS feedback_event_no_update ON feedback_event;
DROP FUNCTION IF EXISTS feedback_event_append_only();
"""
SQLITE_FORWARD = """
CREATE TRIGGER feedback_event_no_update BEFORE UPDATE ON feedback_event
BEGIN
    SELECT RAISE(ABORT, 'feedback_event is append-only: add verdicts, decisions or tombstones beside it');
END;
"""
SQLITE_BACKWARD = "DROP TRIGGER IF EXISTS feedback_event_no_update;"


def forward(apps, schema_editor):
    sql = PG_FORWARD if schema_editor.connection.vendor == "postgresql" else SQLITE_FORWARD
    schema_editor.execute(sql)


def backward(apps, schema_editor):
    sql = PG_BACKWARD if schema_editor.connection.vendor == "postgresql" else SQLITE_BACKWARD
    schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("feedback", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
