"""Celery entry points of the training app.

`training.run` goes to the `training` queue, which GPU workers consume alone:

    celery -A config worker -Q training --concurrency 1 --max-tasks-per-child 1

(one task per child process cannot be set per queue in Celery, hence the flag on the worker:
each run gets a fresh process, so a run's GPU memory and CUDA state never leak into the next).
`acks_late` + `reject_on_worker_lost` put the message back when a worker dies mid-run; the
run row's claim (queued → running under a lock) makes sure it executes once (and takes over a run
whose process died), and the reaper requeues a run whose heartbeat went quiet: sent by beat
every minute where beat runs, and run every minute by every worker's main process from its
start (`worker_ready`) where it does not, so no run stays `running` after its process died."""

from __future__ import annotations

import logging
import threading

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

logger = logging.getLogger(__name__)
REAP_EVERY_S = 60.0

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


def _reap_forever(stop: threading.Event) -> None:
    from django.db import connection

    from apps.training.services import training_runs_reap

    while True:
        try:
            counts = training_runs_reap()
            if any(counts.values()):
                logger.warning("reaped training runs", extra=counts)
        except Exception:  # noqa: BLE001 - the next round tries again
            logger.warning("the training reaper failed", exc_info=True)
        finally:
            connection.close()
        if stop.wait(REAP_EVERY_S):
            return


@worker_ready.connect
def _reap_from_workers(sender: object = None, **_: object) -> None:
    """Every worker checks at start-up (a run its dead predecessor left `running` is requeued
    at once when its process is gone from this host) and then every minute, in a thread of its
    main process: no run waits for a beat that is not running."""
    thread = threading.Thread(
        target=_reap_forever, args=(threading.Event(),), daemon=True, name="training-reaper"
    )
    thread.start()
