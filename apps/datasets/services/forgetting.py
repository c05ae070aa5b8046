"""A rater asked to be forgotten: the dataset versions already built with their events are
flagged (`forgotten_raters`), found through the versions' manifests. Feedback tombstones the
rater and sends `rater_forgotten`; `DatasetsConfig.ready()` connects this service to it."""

from __future__ import annotations

from typing import Any

from apps.datasets.models import DatasetVersion, ManifestEntry


def dataset_versions_forgotten_flag(*, rater_hashes: list[str]) -> list[int]:
    """Flag every version whose manifest holds an event of RATER_HASHES; returns the ids of all
    such versions (flagged now or before), sorted."""
    versions = DatasetVersion.objects.filter(
        pk__in=ManifestEntry.objects.filter(rater_hash__in=rater_hashes).values("version_id")
    )
    flagged = sorted(versions.values_list("pk", flat=True))
    versions.filter(forgotten_raters=False).update(forgotten_raters=True)
    return flagged


def on_rater_forgotten(sender: Any, *, rater_hashes: list[str], **kwargs: Any) -> list[int]:
    """The `rater_forgotten` receiver."""
    return dataset_versions_forgotten_flag(rater_hashes=rater_hashes)
