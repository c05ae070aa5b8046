"""The Celery app. Queues: `ingest` (post-ingest normalization), `quality` (filters and the
spam classifier), `datasets` (dataset builds), `training` (fine-tuning runs: GPU workers start
with `-Q training --concurrency 1 --max-tasks-per-child 1`), `default` (connectors, everything
else)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("sinkhole")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
    "quality-retrain-classifier": {
        "task": "quality.retrain_classifier",
        "schedule": float(os.environ.get("QUALITY_RETRAIN_SECONDS", "3600")),
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
