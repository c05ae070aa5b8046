"""DatasetVersion.sources: the sources a version's events came from, for who may read it by key.
Versions built before the field get it from their manifest (ManifestEntry → Event.source)."""

from __future__ import annotations

from typing import Any

from django.db import migrations, models


def backfill_sources(apps: Any, schema_editor: Any) -> None:
    version_model = apps.get_model("datasets", "DatasetVersion")
    entry_model = apps.get_model("datasets", "ManifestEntry")
    event_model = apps.get_model("feedback", "Event")
    through = version_model.sources.through
    for version_id in version_model.objects.values_list("id", flat=True).iterator():
        event_ids = entry_model.objects.filter(version_id=version_id).values("event_id")
        source_ids = (
            event_model.objects.filter(id__in=event_ids)
            .values_list("source_id", flat=True)
            .distinct()
        )
        through.objects.bulk_create(
            [through(datasetversion_id=version_id, source_id=s) for s in source_ids],
            ignore_conflicts=True,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("datasets", "0002_evalset_ngrams"),
        ("sources", "0001_initial"),
        ("feedback", "0003_ratertombstone"),
    ]

    operations = [
        migrations.AddField(
            model_name="datasetversion",
            name="sources",
            field=models.ManyToManyField(
                blank=True,
                help_text="The sources its events came from (set by the build; who may read it by key).",
                related_name="+",
                to="sources.source",
            ),
        ),
        migrations.RunPython(backfill_sources, migrations.RunPython.noop, elidable=True),
    ]
