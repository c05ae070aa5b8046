"""A source's key reads nothing built from another source's events: training runs on another
source's dataset version, and the lineage of a checkpoint trained on one (the dataset versions
themselves: tests/datasets/test_api.py; every URL: test_permission_matrix.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from apps.datasets.models import Recipe
from apps.datasets.services import dataset_version_create
from apps.datasets.services.build import dataset_version_build
from apps.feedback.services.ingest import feedback_ingest
from apps.feedback.services.normalize import feedback_events_normalize
from apps.quality.services import quality_events_judge
from apps.registry.models import BaseModel, Checkpoint
from apps.training.models import TrainingRun
from tests.conftest import rating

pytestmark = pytest.mark.django_db


def _their_version(source: Any) -> Any:
    results = feedback_ingest(
        source=source, items=[rating(id="t-1", response="Their private reply.")]
    )
    ids = [r.id for r in results]
    feedback_events_normalize(event_ids=ids)
    quality_events_judge(event_ids=ids)
    recipe = Recipe.objects.create(
        name="their-private-recipe", kind="sft", filters={"source": source.name}, test_fraction=0
    )
    version = dataset_version_build(version_id=dataset_version_create(recipe=recipe, user=None).pk)
    assert version.status == "succeeded", version.error
    return version


@pytest.fixture
def trained(make_source, settings: Any, tmp_path: Path) -> tuple[Any, Any, Any]:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    mine, theirs = make_source("mine"), make_source("theirs")
    version = _their_version(theirs.source)
    base_model = BaseModel.objects.create(name="tiny", model_id="tiny/base")
    run = TrainingRun.objects.create(
        dataset_version=version, base_model=base_model, method="sft", spec={}, status="succeeded"
    )
    Checkpoint.objects.create(
        name="their-lora",
        kind="adapter",
        base_model=base_model,
        status="published",
        run=run,
        dataset_version=version,
    )
    return mine, theirs, run


def _get(client: Client, key: str, path: str) -> Any:
    return client.get(path, HTTP_AUTHORIZATION=f"Bearer {key}")


def test_a_key_does_not_see_training_runs_on_another_sources_dataset(
    client: Client, trained
) -> None:
    mine, theirs, run = trained
    assert _get(client, mine.secret, "/api/v1/training-runs").json() == []
    assert _get(client, mine.secret, f"/api/v1/training-runs/{run.pk}").status_code == 404
    listed = _get(client, theirs.secret, "/api/v1/training-runs").json()
    assert [r["id"] for r in listed] == [run.pk] and listed[0]["recipe"] == "their-private-recipe"
    assert _get(client, theirs.secret, f"/api/v1/training-runs/{run.pk}").status_code == 200


def test_a_key_is_not_told_which_other_sources_dataset_trained_a_checkpoint(
    client: Client, trained
) -> None:
    mine, theirs, run = trained
    for path in ("/api/v1/checkpoints/their-lora", "/api/v1/checkpoints"):
        answer = _get(client, mine.secret, path)
        assert answer.status_code == 200 and b"their-private-recipe" not in answer.content
    seen = _get(client, mine.secret, "/api/v1/checkpoints/their-lora").json()
    assert seen["name"] == "their-lora" and seen["dataset_version"] is None
    assert seen["lineage"]["recipe"] is None and seen["lineage"]["run"] is None
    own = _get(client, theirs.secret, "/api/v1/checkpoints/their-lora").json()
    assert own["lineage"]["recipe"] == "their-private-recipe" and own["run"] == run.pk
