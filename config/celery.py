"""The Celery app. Queues: `ingest` (post-ingest normalization), `quality` (filters and the
spam classifier), `datasets` (dataset builds), `training` (fine-tuning runs: GPU workers start
with `-Q training --concurrency 1 --max-tasks-per-child 1`), `default` (connectors, everything
else)."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from celery import Celery
from celery.signals import setup_logging, worker_ready
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("sinkhole")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Which queue each task goes to (a task's own `queue=` option is deprecated since Celery 5.3).
# The short queues carry hints and small jobs; `training` is consumed by GPU workers alone.
app.conf.task_routes = {
    "feedback.*": {"queue": "ingest"},
    "quality.*": {"queue": "quality"},
    "datasets.*": {"queue": "datasets"},
    "training.run": {"queue": "training"},
    "judges.gate": {"queue": "training"},  # loads models to answer and judge
    "training.*": {"queue": "default"},
    "curation.*": {"queue": "default"},
    "connectors.*": {"queue": "default"},
}


# Periodic work. Celery beat sends these; it runs inside the worker in embedded mode
# (`celery -A config worker -B`), or as one `celery -A config beat` process beside distributed
# workers — never more than one beat per deployment (each would send every entry).
app.conf.beat_schedule = {
    "connectors-run-due": {
        "task": "connectors.run_due",
        "schedule": 60.0,
        # A run that waited over a minute in the queue is stale: the next one does its work.
        "options": {"queue": "default", "expires": 55},
    },
    "training-reap": {
        # Runs whose worker stopped sending heartbeats are retried or failed.
        "task": "training.reap",
        "schedule": 60.0,
        "options": {"queue": "default", "expires": 55},
    },
    "curation-index-search": {
        # Newly ingested events enter the inbox's full-text index in batches.
        "task": "curation.index_search",
        "schedule": 10.0,
        "options": {"queue": "default", "expires": 9},
    },
    # The database is the source of truth for derived work (DESIGN 8): these find events
    # without normalized rows or a current verdict and process them, whatever happened to the
    # hints the web sent. The drains look at the newest events (cheap: every few seconds, so
    # the last events of a burst never wait on a lost or skipped hint); the sweeps walk the
    # whole log (every few minutes, and when a worker starts: see _reconcile_on_start).
    "feedback-normalize-pending": {
        "task": "feedback.normalize_pending",
        "schedule": 5.0,
        "options": {"queue": "ingest", "expires": 4},
    },
    "quality-judge-pending": {
        "task": "quality.judge_pending",
        "schedule": 5.0,
        "options": {"queue": "quality", "expires": 4},
    },
    "feedback-reconcile": {
        "task": "feedback.reconcile",
        "schedule": 300.0,
        "options": {"queue": "ingest", "expires": 290},
    },
    "quality-reconcile": {
        "task": "quality.reconcile",
        "schedule": 300.0,
        "options": {"queue": "quality", "expires": 290},
    },
    "quality-retrain-classifier": {
        "task": "quality.retrain_classifier",
        "schedule": float(settings.QUALITY_RETRAIN_SECONDS),
        "options": {"queue": "quality"},
    },
}


@app.on_after_configure.connect
def _beat_state_in_data_dir(sender: Celery, **_: object) -> None:
    """Beat remembers when it last sent each entry in a file: keep it with the other state in
    SINKHOLE_DATA_DIR, not in whatever directory the worker was started from."""
    from django.conf import settings

    sender.conf.beat_schedule_filename = str(settings.DATA_DIR / "celerybeat-schedule")


@app.on_after_finalize.connect
def _make_broker_folders(sender: Celery, **_: object) -> None:
    """The file-system broker needs its folders before the first message is sent."""
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            os.makedirs(options[key], exist_ok=True)


@setup_logging.connect
def _log_like_django(**_: object) -> None:
    """Workers log like the web process (Django's LOGGING: JSON lines at LOG_LEVEL) instead of
    Celery taking over the root logger with its own format."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@worker_ready.connect
def _reconcile_on_start(sender: Any = None, **_: object) -> None:
    """A worker that starts (after a crash, a kill -9, a broker that lost its messages) sends
    the sweeps, so whatever the dead one left half done is found in the database and redone
    without anyone running a command. Sent, not run here: the worker's main process must go on
    consuming."""
    for name in ("feedback.reconcile", "quality.reconcile"):
        try:
            app.send_task(name, expires=600)
        except Exception as exc:  # noqa: BLE001 - the periodic sweep catches up instead
            logging.getLogger(__name__).warning(
                "could not send the start-up sweep", extra={"task": name, "error": str(exc)}
            )


class _Hint:
    """A task whose message only says "look in the database": sent at most once per INTERVAL
    seconds by this process, only while no other hint for it waits in the queue (a flag in the
    cache, set with the message and cleared by the task as it starts: so the queue holds at most
    one, however many web processes), and not at all for a few seconds after the broker refused
    one (the periodic drain and the sweeps do the work then). One drain does the work of every
    request since the last one."""

    def __init__(self, name: str, interval: float = 0.25, backoff: float = 3.0) -> None:
        self.name = name
        self.interval = interval
        self.backoff = backoff
        self._next = 0.0
        self._lock = threading.Lock()

    def send(self, *, now: bool = False) -> bool:
        """Send the hint unless one left this process less than INTERVAL ago (NOW: whatever
        this process sent before; a drain that ran out of time hints its own follow-up), or one
        waits in the queue; True if sent."""
        if now:
            self._next = 0.0
        now_s = time.monotonic()
        if now_s < self._next:  # only ever set when not eager: the cheap test first
            return False
        eager = bool(app.conf.task_always_eager)
        if not eager:  # eager (tests, scripts): every hint runs, and leaves no trace
            with self._lock:
                if now_s < self._next:
                    return False
                self._next = now_s + self.interval
        if not eager and not _flag_hint(self.name):
            return False  # one is waiting in the queue already
        try:
            if eager:
                if self.name not in app.tasks:
                    app.loader.import_default_modules()  # the apps' tasks modules
                app.tasks[self.name].apply()
            else:
                app.send_task(self.name, retry=False)
        except Exception as exc:  # noqa: BLE001 - a broker outage costs time, never events
            if eager:
                raise
            with self._lock:
                self._next = time.monotonic() + self.backoff
            hint_taken(self.name)
            logging.getLogger(__name__).warning(
                "hint not sent; the periodic drain will catch up",
                extra={"task": self.name, "error": f"{exc.__class__.__name__}: {exc}"},
            )
            return False
        return True


_hints: dict[str, _Hint] = {}
# A hint that was sent but never taken (its message lost) blocks the next ones this long at most;
# the periodic drain runs meanwhile.
HINT_FLAG_TTL_S = 30


def _flag_hint(name: str) -> bool:
    """Mark a hint for NAME as queued; False if one already is. Where the cache fails, True: a
    message too many costs a little; one too few costs time."""
    from django.core.cache import cache

    try:
        return bool(cache.add(f"sinkhole:hint:{name}", 1, HINT_FLAG_TTL_S))
    except Exception:  # noqa: BLE001 - Redis down: send anyway (it fails fast, or gets through)
        return True


def hint_taken(name: str) -> None:
    """The task NAME starts draining: hints sent from now on must reach the queue again."""
    from django.core.cache import cache

    try:
        cache.delete(f"sinkhole:hint:{name}")
    except Exception:  # noqa: BLE001 - the flag expires on its own
        logging.getLogger(__name__).warning("hint flag not cleared", extra={"task": name})


def send_hint(name: str, *, now: bool = False) -> bool:
    """Ask the workers to drain what the task NAME processes (see _Hint)."""
    hint = _hints.get(name)
    if hint is None:
        hint = _hints.setdefault(name, _Hint(name))
    return hint.send(now=now)
