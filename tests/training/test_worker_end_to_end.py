"""End to end through a real Celery worker process: a dataset version, a run launched through the
API, trained by a worker that shares nothing with the test but the database, the broker and the
artifact folder, then published (files copied, a fake vLLM told) and listed in the manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.training.models import TrainingRun
from tests.core.conftest import WorkerProcess
from tests.core.test_worker import wait_for
from tests.registry.factories import make_base_model, make_dataset_version, make_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_real_worker_trains_a_dataset_version_into_a_published_checkpoint(
    tiny_model_dir, live_broker, tmp_path, client, settings, fake_vllm
):
    make_base_model(tiny_model_dir, name="tiny")
    version = make_dataset_version("dpo")
    client.force_login(make_user("ada", group="admin"))
    response = client.post(
        "/api/v1/training-runs",
        {
            "dataset_version": version.pk,
            "method": "dpo",
            "base_model": "tiny",
            "spec": {"max_steps": 3, "batch_size": 2, "num_samples": 0},
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    run_id = response.json()["id"]
    assert TrainingRun.objects.get().status == "queued"

    # The overridden settings (ARTIFACT_ROOT in tmp) hide the module name the worker needs.
    settings.SETTINGS_MODULE = "config.settings"
    worker = WorkerProcess(live_broker, tmp_path / "worker.log")
    try:
        wait_for(
            lambda: (
                TrainingRun.objects.get(pk=run_id).status in ("succeeded", "failed", "cancelled")
            ),
            timeout=240,
            what="the worker did not finish the run",
            log=worker.log,
        )
    finally:
        worker.stop()
    run = TrainingRun.objects.get(pk=run_id)
    assert run.status == "succeeded", run.error
    assert run.attempts == 1 and run.step == 3 and run.worker_host and ":" in run.worker_host
    name = run.checkpoint.name

    published = client.post(
        f"/api/v1/checkpoints/{name}/publish",
        {"alias": "production"},
        content_type="application/json",
    )
    assert published.status_code == 200, published.json()
    target = Path(settings.ARTIFACT_ROOT) / "adapters" / name
    assert (target / "adapter_model.safetensors").is_file()
    assert fake_vllm.calls == [
        ("/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(target.resolve())})
    ]
    manifest = client.get("/api/v1/serving/manifest").json()
    assert manifest["aliases"] == {"production": name}
    (entry,) = manifest["adapters"]
    assert entry["base_model"] == tiny_model_dir and entry["sha256"] == run.checkpoint.sha256
