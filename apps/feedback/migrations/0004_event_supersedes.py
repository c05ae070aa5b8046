"""Event.supersedes: a revision (a changed rating) links to the earlier event it revises.

The column is nullable and added without touching a row (PostgreSQL: ALTER TABLE ADD COLUMN,
which the append-only trigger does not see). SQLite cannot add a UNIQUE column in place, so
Django rebuilds the table there, which drops its triggers: the append-only trigger of
0002_event_append_only is created again."""

import django.db.models.deletion
from django.db import migrations, models

SQLITE_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS feedback_event_no_update BEFORE UPDATE ON feedback_event
BEGIN
    SELECT RAISE(ABORT, 'feedback_event is append-only: add verdicts, decisions or tombstones beside it');
END;
"""


def restore_sqlite_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(SQLITE_TRIGGER)


class Migration(migrations.Migration):
    dependencies = [
        ("feedback", "0003_ratertombstone"),
    ]

    operations = [
        # Backwards, removing the column rebuilds the table again: the trigger comes back last.
        migrations.RunPython(migrations.RunPython.noop, restore_sqlite_trigger),
        migrations.AddField(
            model_name="event",
            name="supersedes",
            field=models.OneToOneField(
                blank=True,
                help_text="The earlier event of the same source and rater that this one revises "
                "(a changed rating). One revision per event: datasets and leaderboards count "
                "only the latest, an event nobody supersedes.",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="superseded_by",
                to="feedback.event",
            ),
        ),
        migrations.RunPython(restore_sqlite_trigger, migrations.RunPython.noop),
    ]
