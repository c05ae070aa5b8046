"""No run stays `running` after its process died: the reaper knows a dead process on its own
host at once (no two-minute wait), a redelivered message takes over such a run, `train --wait`
notices and says so, SIGTERM to `train --here` checkpoints and marks the run, `train --cancel`
cancels, and every worker reaps at start-up and every minute without beat. The stored spec names
every value used; the run page says which phase a run is in."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.training import selectors, services
from apps.training.models import TrainingRun
from tests.registry.factories import make_base_model, make_dataset_version

pytestmark = pytest.mark.django_db

FAST = {"max_steps": 2, "batch_size": 2, "num_samples": 0, "save_steps": 1}


@pytest.fixture
def tiny(tiny_model_dir):
    return make_base_model(tiny_model_dir, name="tiny")


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _queued_run(method: str = "dpo", **overrides: Any) -> TrainingRun:
    version = make_dataset_version(method, name=f"recipe-{TrainingRun.objects.count()}")
    return services.training_run_create(
        dataset_version=version.pk,
        method=method,
        base_model="tiny",
        overrides={**FAST, **overrides},
        enqueue=False,
    )


def test_a_run_whose_process_died_on_this_host_is_requeued_at_once(
    tiny, django_capture_on_commit_callbacks
):
    run = _queued_run()
    TrainingRun.objects.filter(pk=run.pk).update(
        status="running",
        attempts=1,
        heartbeat_at=timezone.now(),  # it beat a moment ago: the heartbeat alone says "alive"
        worker_host=f"{socket.gethostname()}:{_dead_pid()}",
    )
    with django_capture_on_commit_callbacks(execute=False):
        counts = services.training_runs_reap()
    assert counts == {"requeued": 1, "failed": 0, "cancelled": 0}
    run.refresh_from_db()
    assert run.status == "queued" and "is gone" in run.error


def test_a_redelivered_message_takes_over_a_run_whose_process_died(tiny):
    run = _queued_run(method="sft")
    TrainingRun.objects.filter(pk=run.pk).update(
        status="running",
        attempts=1,
        heartbeat_at=timezone.now(),
        worker_host=f"{socket.gethostname()}:{_dead_pid()}",
    )
    # Before: `_claim` saw `running` and left it, so the run stayed running forever.
    finished = services.training_run_execute(run_id=run.pk)
    assert finished.status == "succeeded", finished.error
    assert finished.attempts == 2


def test_a_live_process_on_this_host_is_left_alone(tiny):
    run = _queued_run()
    TrainingRun.objects.filter(pk=run.pk).update(
        status="running",
        attempts=1,
        heartbeat_at=timezone.now(),
        worker_host=f"{socket.gethostname()}:{os.getpid()}",
    )
    assert services.training_runs_reap() == {"requeued": 0, "failed": 0, "cancelled": 0}
    assert services.training_run_execute(run_id=run.pk).status == "running"


def test_train_wait_notices_a_dead_worker_and_says_so(tiny, monkeypatch):
    from django.core.management.base import OutputWrapper

    from apps.training.management.commands import train

    run = _queued_run()
    TrainingRun.objects.filter(pk=run.pk).update(
        status="running",
        attempts=3,  # out of attempts: the reaper fails it
        heartbeat_at=timezone.now(),
        worker_host=f"{socket.gethostname()}:{_dead_pid()}",
    )
    monkeypatch.setattr(train.time, "sleep", lambda _: pytest.fail("it waited on a dead run"))
    command = train.Command()
    err = StringIO()
    command.stderr = OutputWrapper(err)
    finished = command._follow(TrainingRun.objects.get(pk=run.pk), quiet=True)
    assert finished.status == "failed"
    assert "died" in err.getvalue() and "failed" in err.getvalue()


def test_a_stop_signal_checkpoints_and_marks_the_run(tiny):
    from trainer import run_job

    run = _queued_run(max_steps=50, save_steps=1000)
    stop = threading.Event()

    def stopping_run_job(spec, on_progress, should_stop, **kwargs):
        def progress(p):
            on_progress(p)
            if p.step >= 1:
                stop.set()  # what the SIGTERM handler of `train --here` does

        return run_job(spec, on_progress=progress, should_stop=should_stop, **kwargs)

    finished = services.training_run_execute(
        run_id=run.pk, run_job=stopping_run_job, stop_event=stop
    )
    assert finished.status == "cancelled"
    assert finished.error.startswith("stopped by a stop signal at step 1")
    assert "checkpoint checkpoint-1 saved" in finished.error


def test_sigterm_to_train_here_marks_the_run_instead_of_leaving_it_running(tiny, monkeypatch):
    from apps.training.management.commands import train

    run = _queued_run()
    seen = {}

    def execute(*, run_id, stop_event):
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to the handler the command installed
        seen["stopped"] = stop_event.is_set()
        return TrainingRun.objects.get(pk=run_id)

    monkeypatch.setattr(train, "training_run_execute", execute)
    command = train.Command()
    command.stderr = StringIO()
    command._execute_here(run.pk)
    assert seen["stopped"] is True
    assert signal.getsignal(signal.SIGTERM) is not None  # the previous handler is back


def test_the_train_command_cancels_a_run(tiny):
    run = _queued_run()
    out = StringIO()
    call_command("train", "--cancel", str(run.pk), stdout=out)
    assert out.getvalue().strip() == f"run {run.pk} cancelled"
    assert TrainingRun.objects.get(pk=run.pk).status == "cancelled"
    running = _queued_run()
    TrainingRun.objects.filter(pk=running.pk).update(status="running")
    out = StringIO()
    call_command("train", "--cancel", str(running.pk), "--json", stdout=out)
    assert json.loads(out.getvalue()) == {"run": running.pk, "status": "running"}
    assert TrainingRun.objects.get(pk=running.pk).cancel_requested


def test_the_stored_spec_names_every_default_and_the_worker_adds_its_choices(tiny):
    run = _queued_run()
    # Before: the learning rate and max_length were blank until the run's output folder.
    assert run.spec["learning_rate"] == 5e-4 and run.spec["max_length"] == 256
    assert run.spec["beta"] == 0.1 and run.spec["lora"]["r"] == 16
    finished = services.training_run_execute(run_id=run.pk)
    assert finished.status == "succeeded", finished.error
    assert finished.spec["micro_batch_size"] == 1
    assert finished.spec["gradient_checkpointing"] is False


def test_every_worker_reaps_at_start_up_without_beat(tiny, monkeypatch):
    from apps.training import tasks

    calls = []
    monkeypatch.setattr(
        "apps.training.services.training_runs_reap",
        lambda: calls.append(1) or {"requeued": 0, "failed": 0, "cancelled": 0},
    )
    monkeypatch.setattr(tasks, "REAP_EVERY_S", 0.01)
    stop = threading.Event()
    thread = threading.Thread(target=tasks._reap_forever, args=(stop,), daemon=True)
    thread.start()
    while len(calls) < 3:
        thread.join(0.01)
    stop.set()
    thread.join(2)
    assert not thread.is_alive() and len(calls) >= 3
    receivers = [r[1]() for r in tasks.worker_ready.receivers]
    assert tasks._reap_from_workers in receivers


def test_the_run_status_says_which_phase_with_progress_and_eta(tiny):
    run = _queued_run()
    TrainingRun.objects.filter(pk=run.pk).update(
        status="running",
        started_at=timezone.now(),
        step=2,
        total_steps=2,
        progress=1.0,
        metrics={
            "live": {"phase": "evaluating", "eval_done": 150, "eval_total": 600, "eta_seconds": 80}
        },
    )
    status = selectors.run_status(TrainingRun.objects.get(pk=run.pk))
    assert status["phase"]["phase"] == "evaluating"
    assert status["progress"] == 0.25  # the bar follows the evaluation, not a full training bar
    assert "evaluating: 150/600 sequences scored" in status["phase"]["text"]
    assert "about 80 s left" in status["phase"]["text"]
    TrainingRun.objects.filter(pk=run.pk).update(
        total_steps=0, step=0, metrics={"live": {"phase": "loading"}}
    )
    text = selectors.run_status(TrainingRun.objects.get(pk=run.pk))["phase"]["text"]
    assert text.startswith("loading the model")  # not "running step 0/0"
    TrainingRun.objects.filter(pk=run.pk).update(
        metrics={
            "live": {"phase": "reference", "eval_done": 900, "eval_total": 3600, "eta_seconds": 600}
        }
    )
    status = selectors.run_status(TrainingRun.objects.get(pk=run.pk))
    assert status["progress"] == 0.25  # the bar follows the scoring, before step 1
    assert status["phase"]["text"].startswith("scoring the base model once before training")
    assert (
        "900/3600 sequences" in status["phase"]["text"] and "10 min left" in status["phase"]["text"]
    )
