"""Celery entry points of the training app.

`training.run` goes to the `training` queue, which GPU workers consume alone:

    celery -A config worker -Q training --concurrency 1 --max-tasks-per-child 1

(one task per child process cannot be set per queue in Celery, hence the flag on the worker:
each run gets a fresh process, so a run's GPU memory and CUDA state never leak into the next).
`acks_late` + `reject_on_worker_lost` put the message back when a worker dies mid-run; the
run row's claim (queued → running under a lock) makes sure it executes once, and the reaper
(`training.reap`, periodic) requeues a run whose heartbeat went quiet."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

SOFT_TIME_LIMIT_S = settings.TRAINING_SOFT_TIME_LIMIT


@shared_task(
    bind=True,
    name="training.run",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=SOFT_TIME_LIMIT_S,
    time_limit=SOFT_TIME_LIMIT_S + 600,
)
def run(self, run_id: int) -> str:  # noqa: ANN001 - Celery's bound task
    """Train one queued run to the end (or resume it) and register its checkpoint."""
    from apps.training.services import training_run_execute

    return training_run_execute(run_id=run_id, task_id=self.request.id or "").status


@shared_task(name="training.reap", acks_late=True, time_limit=300)
def reap() -> dict[str, int]:
    """Periodic: requeue or fail runs whose worker stopped beating."""
    from apps.training.services import training_runs_reap

    return training_runs_reap()
