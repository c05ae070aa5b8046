"""`manage.py build_dataset` and `manage.py forget_rater`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.datasets.models import DatasetVersion, Recipe
from apps.feedback.models import RaterTombstone
from apps.sources.hashing import rater_hash
from tests.datasets.conftest import pref, thumbs

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def events(feed) -> list[int]:
    return feed(
        [
            pref(f"Question {i}?", f"Good answer {i}.", f"Bad answer {i}.", 0, rater=f"r{i}")
            for i in range(8)
        ]
        + [thumbs("Hello?", "Hi!", 1, rater="alice")]
    )


def test_an_adhoc_build_prints_one_json_object(events) -> None:
    out = json.loads(run("build_dataset", "--kind", "dpo", "--source", "test-app", "--json"))
    assert set(out) >= {"version", "hash", "rows", "files"}
    version = DatasetVersion.objects.get(pk=out["version"])
    assert (
        out["hash"] == version.content_hash
        and out["rows"] == version.rows
        and sum(out["rows"].values()) == 8
    )
    assert (
        Path(out["files"]["train"]["jsonl"]).is_file()
        and Path(out["files"]["test"]["parquet"]).is_file()
    )
    recipe = Recipe.objects.get(pk=version.recipe_id)
    assert (
        recipe.adhoc
        and recipe.name.startswith("build-dataset-dpo-")
        and recipe.filters == {"source": "test-app"}
    )


def test_a_saved_recipe_builds_and_prints_its_files(events) -> None:
    run("build_dataset", "--kind", "sft", "--json")
    name = Recipe.objects.get().name
    text = run("build_dataset", "--recipe", name)
    assert "succeeded" in text and "hash " in text and "train.jsonl" in text and "manifest" in text
    with pytest.raises(CommandError, match="no recipe"):
        run("build_dataset", "--recipe", "nope")
    with pytest.raises(CommandError, match="min_trust"):
        run("build_dataset", "--kind", "kto", "--min-trust", "3")
    with pytest.raises(CommandError, match="no source"):
        run("build_dataset", "--kind", "kto", "--source", "ghost")


def test_forget_rater_tombstones_flags_and_later_builds_leave_them_out(events, src) -> None:
    before = json.loads(run("build_dataset", "--kind", "sft", "--json"))
    out = json.loads(run("forget_rater", "alice", "--json"))
    digest = rater_hash(src.source.pk, "alice")
    assert (
        digest in out["rater_hashes"]
        and out["events"] == 1
        and out["flagged_versions"] == [before["version"]]
    )
    assert RaterTombstone.objects.get(rater_hash=digest).events == 1
    assert DatasetVersion.objects.get(pk=before["version"]).forgotten_raters
    after = json.loads(run("build_dataset", "--kind", "sft", "--json"))
    assert sum(after["rows"].values()) == sum(before["rows"].values()) - 1
    assert not DatasetVersion.objects.get(pk=after["version"]).forgotten_raters
    again = run("forget_rater", digest, "--hashed")
    assert (
        "1 events tombstoned" in again
        and RaterTombstone.objects.filter(rater_hash=digest).count() == 1
    )
    with pytest.raises(CommandError, match="64"):
        run("forget_rater", "alice", "--hashed")
