"""Training runs: launching validates before anything is queued, the task trains a tiny real
model to a registered checkpoint, cancel stops a running run within about a second, and the
reaper requeues a run whose worker died so that it resumes from its last checkpoint."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.core.exceptions import ApplicationError
from apps.registry.storage import sha256_file
from apps.training import services
from apps.training.models import TrainingRun
from tests.registry.factories import make_base_model, make_dataset_version, make_user

pytestmark = pytest.mark.django_db

FAST = {
    "max_steps": 4,
    "batch_size": 2,
    "num_samples": 1,
    "sample_max_new_tokens": 4,
    "save_steps": 2,
}


@pytest.fixture
def tiny(tiny_model_dir):
    return make_base_model(tiny_model_dir, name="tiny")


def errors_of(call) -> dict[str, list[str]]:
    with pytest.raises(ApplicationError) as exc:
        call()
    return exc.value.fields


def test_launching_names_each_problem_before_anything_is_queued(tiny):
    sft = make_dataset_version("sft")
    fields = errors_of(
        lambda: services.training_run_create(
            dataset_version=sft.pk, method="dpo", base_model="tiny"
        )
    )
    assert fields == {"method": [f"a dpo run needs a dpo dataset; v{sft.pk} is a sft dataset"]}
    fields = errors_of(
        lambda: services.training_run_create(
            dataset_version=sft.pk, method="sft", base_model="gpt-9"
        )
    )
    assert (
        list(fields) == ["base_model"] and "unknown base model 'gpt-9'" in fields["base_model"][0]
    )
    fields = errors_of(
        lambda: services.training_run_create(
            dataset_version=sft.pk,
            method="sft",
            base_model="tiny",
            overrides={"lora": {"r": 0}, "learning_rate": 3, "output_dir": "/etc"},
        )
    )
    assert set(fields) == {"spec.lora.r", "spec.learning_rate", "spec.output_dir"}
    fields = errors_of(lambda: services.training_run_create(dataset_version=999, method="sft"))
    assert "there is no dataset version" in fields["dataset_version"][0]
    building = make_dataset_version("sft", name="still-building")
    building.status = "building"
    building.save()
    fields = errors_of(
        lambda: services.training_run_create(
            dataset_version=building.pk, method="sft", base_model="tiny"
        )
    )
    assert "is building" in fields["dataset_version"][0]
    # A base model registered with a path that is not a model.
    make_base_model("/nowhere/model", name="broken")
    fields = errors_of(
        lambda: services.training_run_create(
            dataset_version=sft.pk, method="sft", base_model="broken"
        )
    )
    assert fields["base_model"] == ["/nowhere/model does not exist"]
    assert not TrainingRun.objects.exists()


def test_the_api_launches_for_admins_only_and_answers_400_with_field_paths(tiny, client, src):
    dpo = make_dataset_version("dpo")
    body = {
        "dataset_version": dpo.pk,
        "method": "kto",
        "base_model": "tiny",
        "spec": {"lora": {"r": -1}},
    }
    client.force_login(make_user("vera", group="viewer"))
    assert (
        client.post("/api/v1/training-runs", body, content_type="application/json").status_code
        == 403
    )
    assert client.get("/api/v1/training-runs").status_code == 200
    assert (
        client.post(
            "/api/v1/training-runs",
            body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {src.secret}",
        ).status_code
        == 403
    )

    client.force_login(make_user("tom", perms=("training.add_trainingrun",)))
    response = client.post("/api/v1/training-runs", body, content_type="application/json")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert fields == {
        "method": [f"a kto run needs a kto dataset; v{dpo.pk} is a dpo dataset"],
        "spec.lora.r": ["must be at least 1 (the LoRA rank), not -1"],
    }
    body["method"] = "dpo"
    response = client.post("/api/v1/training-runs", body, content_type="application/json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"spec.lora.r"}
    assert not TrainingRun.objects.exists()


def test_a_run_goes_through_the_task_to_a_registered_checkpoint(
    tiny, client, django_capture_on_commit_callbacks
):
    version = make_dataset_version("dpo")
    client.force_login(make_user("ada", group="admin"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/v1/training-runs",
            {"dataset_version": version.pk, "method": "dpo", "base_model": "tiny", "spec": FAST},
            content_type="application/json",
        )
    assert response.status_code == 201, response.json()
    run = TrainingRun.objects.get()
    assert run.status == "succeeded", run.error
    assert (run.step, run.total_steps, run.progress, run.attempts) == (4, 4, 1.0, 1)
    assert [p["step"] for p in run.loss_curve] == [1, 2, 3, 4]
    assert all("loss" in p for p in run.loss_curve) and "step 4/4" in run.log_tail
    assert run.worker_host and run.started_at and run.finished_at and run.task_id
    assert Path(run.output_dir) == Path(run.spec["output_dir"]) and run.output_dir.endswith(
        f"runs/{run.pk}"
    )
    assert run.metrics["eval_preference_accuracy"] >= 0

    checkpoint = run.checkpoint
    adapter = Path(checkpoint.local_path)
    assert (
        checkpoint.status,
        checkpoint.method,
        checkpoint.base_model,
        checkpoint.dataset_version,
    ) == ("candidate", "dpo", tiny, version)
    assert checkpoint.sha256["adapter_model.safetensors"] == sha256_file(
        adapter / "adapter_model.safetensors"
    )
    assert set(checkpoint.sha256) >= {"adapter_config.json", "README.md"}
    lineage = json.loads((adapter / "lineage.json").read_text())
    assert lineage["sinkhole_run"] == run.pk and lineage["recipe"] == version.recipe.name

    detail = client.get(f"/api/v1/training-runs/{run.pk}").json()
    assert detail["checkpoint"] == checkpoint.name and len(detail["loss_curve"]) == 4
    # A duplicate delivery of the message changes nothing.
    assert services.training_run_execute(run_id=run.pk).status == "succeeded"
    assert TrainingRun.objects.get().attempts == 1


def test_cancel_stops_a_running_run_and_a_queued_one_at_once(tiny, monkeypatch):
    from trainer import run_job

    version = make_dataset_version("sft")
    run = services.training_run_create(
        dataset_version=version.pk,
        method="sft",
        base_model="tiny",
        overrides={**FAST, "max_steps": 1000, "save_steps": 5000},
        enqueue=False,
    )
    seen: list[int] = []

    def cancelling_run_job(spec, on_progress, should_stop, **kwargs):
        def progress(p):
            on_progress(p)
            if p.step == 2 and not seen:
                services.training_run_cancel(run=run)  # as if from the API, mid-run
                seen.append(p.step)

        return run_job(spec, on_progress=progress, should_stop=should_stop, **kwargs)

    finished = services.training_run_execute(run_id=run.pk, run_job=cancelling_run_job)
    assert finished.status == "cancelled" and finished.finished_at
    # The flag is read at most once a second: a few dozen tiny steps later, never the whole run.
    assert 2 <= finished.step < 1000, finished.step
    assert not hasattr(finished, "checkpoint") or finished.checkpoint is None

    queued = services.training_run_create(
        dataset_version=version.pk, method="sft", base_model="tiny", overrides=FAST, enqueue=False
    )
    assert services.training_run_cancel(run=queued).status == "cancelled"
    # The message that reaches a worker later does nothing.
    assert services.training_run_execute(run_id=queued.pk).status == "cancelled"
    assert TrainingRun.objects.get(pk=queued.pk).attempts == 0
    with pytest.raises(ApplicationError):
        services.training_run_cancel(
            run=TrainingRun.objects.filter(pk=run.pk).update(status="succeeded") and run
        )


def test_the_reaper_requeues_a_dead_workers_run_which_resumes_from_its_checkpoint(
    tiny, settings, django_capture_on_commit_callbacks
):
    from trainer import JobSpec, latest_checkpoint, run_job

    version = make_dataset_version("dpo")
    run = services.training_run_create(
        dataset_version=version.pk,
        method="dpo",
        base_model="tiny",
        overrides={**FAST, "max_steps": 6, "save_steps": 3},
        enqueue=False,
    )
    # A worker took it, trained 2 steps (checkpoint at step 2), then died: the row says running.
    steps = []
    run_job(
        JobSpec.from_dict(run.spec),
        on_progress=lambda p: steps.append(p.step),
        should_stop=lambda: max(steps, default=0) >= 2,
    )  # seen as step 3 starts: stops there, keeping the last whole step
    assert latest_checkpoint(run.output_dir).name == "checkpoint-2"
    long_ago = timezone.now() - timedelta(seconds=600)
    TrainingRun.objects.filter(pk=run.pk).update(
        status="running",
        attempts=1,
        heartbeat_at=long_ago,
        started_at=long_ago,
        worker_host="gpu-1:42",
    )
    # A live one is left alone.
    other = services.training_run_create(
        dataset_version=version.pk, method="dpo", base_model="tiny", overrides=FAST, enqueue=False
    )
    TrainingRun.objects.filter(pk=other.pk).update(
        status="running", attempts=1, heartbeat_at=timezone.now()
    )

    with django_capture_on_commit_callbacks(execute=True):
        counts = services.training_runs_reap()
    assert counts == {"requeued": 1, "failed": 0, "cancelled": 0}
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert run.attempts == 2 and run.step == 6
    assert "resumed from step 2" in run.log_tail
    assert [p["step"] for p in run.loss_curve] == [3, 4, 5, 6]
    assert TrainingRun.objects.get(pk=other.pk).status == "running"

    # Out of attempts: failed, with the reason.
    settings.TRAINING_MAX_ATTEMPTS = 1
    TrainingRun.objects.filter(pk=other.pk).update(heartbeat_at=long_ago)
    assert services.training_runs_reap() == {"requeued": 0, "failed": 1, "cancelled": 0}
    other.refresh_from_db()
    assert other.status == "failed" and "worker lost" in other.error and "giving up" in other.error


def test_a_run_whose_trainer_raises_is_failed_with_the_error(tiny):
    version = make_dataset_version("kto")
    run = services.training_run_create(
        dataset_version=version.pk, method="kto", base_model="tiny", overrides=FAST, enqueue=False
    )

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    finished = services.training_run_execute(run_id=run.pk, run_job=broken)
    assert finished.status == "failed" and finished.error.startswith(
        "RuntimeError: CUDA out of memory"
    )


def test_the_train_command_waits_and_prints_one_json_object(tiny):
    version = make_dataset_version("sft")
    out = StringIO()
    call_command(
        "train",
        "--dataset",
        f"v{version.pk}",
        "--method",
        "sft",
        "--base",
        "tiny",
        "--max-steps",
        "2",
        "--set",
        "batch_size=2",
        "--set",
        "num_samples=0",
        "--wait",
        "--json",
        stdout=out,
        stderr=StringIO(),
    )
    result = json.loads(out.getvalue())
    run = TrainingRun.objects.get()
    assert result["run"] == run.pk and result["status"] == "succeeded"
    assert result["checkpoint"] == run.checkpoint.name
    assert Path(result["adapter_path"], "adapter_config.json").is_file()
    assert result["metrics"]["eval_loss"] > 0
    with pytest.raises(CommandError, match="a kto run needs a kto dataset"):
        call_command("train", "--dataset", str(version.pk), "--method", "kto", "--base", "tiny")


def test_waiting_on_a_worker_shows_a_progress_bar_until_the_run_ends(tiny, monkeypatch):
    from django.core.management.base import OutputWrapper

    from apps.training.management.commands import train

    version = make_dataset_version("sft")
    run = services.training_run_create(
        dataset_version=version.pk, method="sft", base_model="tiny", overrides=FAST, enqueue=False
    )
    # What a worker would write between two polls: a step at a time, then the end.
    updates = iter(
        [
            {
                "status": "running",
                "step": 1,
                "total_steps": 3,
                "loss_curve": [{"step": 1, "loss": 0.7}],
            },
            {"step": 2, "loss_curve": [{"step": 1, "loss": 0.7}, {"step": 2, "loss": 0.61}]},
            {"step": 3, "status": "succeeded"},
        ]
    )
    monkeypatch.setattr(
        train.time, "sleep", lambda _: TrainingRun.objects.filter(pk=run.pk).update(**next(updates))
    )
    command = train.Command()
    err = StringIO()
    command.stderr = OutputWrapper(err)
    finished = command._follow(run, quiet=False)

    assert finished.status == "succeeded" and finished.step == 3
    shown = err.getvalue()
    assert f"run {run.pk}" in shown and "3/3" in shown and "loss 0.6100" in shown
    assert "succeeded" in shown


def test_a_finished_runs_adapter_is_scored_on_an_uploaded_eval_set_and_shown(
    tiny, client, tmp_path
):
    version = make_dataset_version("dpo")
    call_command(
        "train", "--dataset", str(version.pk), "--method", "dpo", "--base", "tiny",
        "--max-steps", "2", "--set", "batch_size=2", "--set", "num_samples=0", "--here",
        "--json", stdout=StringIO(), stderr=StringIO(),
    )  # fmt: skip
    run = TrainingRun.objects.get()
    assert run.status == "succeeded"
    # The version's own test pairs, uploaded as another eval set: the run's own numbers again.
    held_out = tmp_path / "held-out.jsonl"
    held_out.write_bytes(version.file_path("test", "jsonl").read_bytes())
    out = StringIO()
    call_command(
        "train", "--evaluate", str(run.pk), "--eval-file", str(held_out), "--json", stdout=out
    )
    result = json.loads(out.getvalue())
    assert result["name"] == "held-out" and result["sha256"] == sha256_file(held_out)
    for key in ("eval_preference_accuracy", "eval_base_logp_accuracy", "eval_reward_margin"):
        assert result["metrics"][key] == pytest.approx(run.metrics[key], abs=1e-4), key
    run.refresh_from_db()
    assert run.metrics["eval_sets"]["held-out"]["metrics"] == result["metrics"]
    assert run.metrics["eval_preference_accuracy"] == result["metrics"]["eval_preference_accuracy"]

    client.force_login(make_user("vera", group="viewer"))
    page = client.get(f"/training/{run.pk}/").content.decode()
    assert "On held-out, base → trained" in page and str(held_out) in page

    # Bad input: one clear field error each, nothing stored.
    sft_rows = tmp_path / "chat.jsonl"
    sft_rows.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(CommandError, match="eval_file"):
        call_command("train", "--evaluate", str(run.pk), "--eval-file", str(sft_rows))
    with pytest.raises(CommandError, match="is not a file"):
        call_command("train", "--evaluate", str(run.pk), "--eval-file", str(tmp_path / "none"))
    with pytest.raises(CommandError, match="needs --eval-file"):
        call_command("train", "--evaluate", str(run.pk))
    TrainingRun.objects.filter(pk=run.pk).update(status="failed")
    errors = errors_of(
        lambda: services.training_run_evaluate(
            run=TrainingRun.objects.get(pk=run.pk), eval_file=held_out
        )
    )
    assert "only a finished run" in errors["run"][0]
    run.refresh_from_db()
    assert list(run.metrics["eval_sets"]) == ["held-out"]
