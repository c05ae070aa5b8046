"""A version's stats.json is written once, complete: the same card the version row holds,
events included, and on disk before the version is marked succeeded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.datasets.models import DatasetVersion
from apps.datasets.services import dataset_version_build, dataset_version_create, recipe_create
from tests.datasets.conftest import pref, thumbs

pytestmark = pytest.mark.django_db


def test_stats_json_is_written_once_with_the_events_the_version_row_counts(
    feed, monkeypatch
) -> None:
    feed(
        [
            pref("Tell me about the plum.", "A fruit.", "No idea.", 0, rater="r1"),
            pref("Tell me about the fig.", "A fruit too.", "Who knows.", 1, rater="r2"),
            thumbs("What is 2+2?", "4", 1, rater="u1"),
        ]
    )
    writes: list[Path] = []
    real_write_bytes = Path.write_bytes

    def counting_write_bytes(path: Path, data: bytes) -> int:
        if path.name == "stats.json":
            writes.append(path)
        return real_write_bytes(path, data)

    monkeypatch.setattr(Path, "write_bytes", counting_write_bytes)
    recipe = recipe_create(name="stats-once", kind="dpo", test_fraction=0.0)
    version = dataset_version_build(
        version_id=dataset_version_create(recipe=recipe, enqueue=False).pk
    )
    assert version.status == DatasetVersion.Status.SUCCEEDED, version.error
    assert len(writes) == 1, f"stats.json written {len(writes)} times"
    on_disk = json.loads(writes[0].read_bytes())
    assert on_disk == version.stats and on_disk["events"] == 2
