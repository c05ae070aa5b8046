"""The schedule end to end: a real `celery worker -B` (beat embedded in the worker, as in the
embedded mode) on the test database and a real broker sends `connectors.run_due`, which queues
`connectors.openwebui_pull`, which pulls a real HTTP server's Open WebUI export.

Beat sends its every-minute entry a minute after it first starts; so that the test need not
wait that minute, it starts beat with a schedule file whose last run is five minutes old, as a
beat that has been running for a while would have."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings

from apps.feedback.models import Event
from apps.peers.conftest import TOKEN
from apps.peers.models import OpenWebUIConnector
from apps.peers.openwebui.services import openwebui_connector_save
from tests.core.conftest import ROOT, database_url_of_the_test_db

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def seeded_schedule(path: Path) -> None:
    from celery.beat import PersistentScheduler

    from config.celery import app

    scheduler = PersistentScheduler(app=app, schedule_filename=str(path), lazy=False)
    scheduler.schedule["connectors-run-due"].last_run_at = app.now() - timedelta(minutes=5)
    scheduler.sync()
    scheduler.close()


def test_a_worker_with_embedded_beat_pulls_a_due_open_webui_connector(
    live_broker,
    openwebui,
    make_source,
    tmp_path,
) -> None:
    connector = openwebui_connector_save(
        name="scheduled", source=make_source("owui").source, base_url=openwebui.url, token=TOKEN
    )
    schedule = tmp_path / "celerybeat-schedule"
    seeded_schedule(schedule)
    env = {
        **os.environ,
        **live_broker.env,
        "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE,
        "DATABASE_URL": database_url_of_the_test_db(),
        "CELERY_BROKER_URL": live_broker.url,
        "SECRET_KEY": settings.SECRET_KEY,
        "RATER_HASH_KEY": settings.RATER_HASH_KEY,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-B",
                "-s",
                str(schedule),
                "-Q",
                ",".join(settings.CELERY_WORKER_QUEUES),
                "--pool",
                "solo",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and Event.objects.count() < 4:
                assert worker.poll() is None, log_path.read_text()[-3000:]
                time.sleep(0.25)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()

    output = log_path.read_text(errors="replace")
    assert Event.objects.count() == 4, output[-3000:]
    assert "connectors.run_due" in output and "connectors.openwebui_pull" in output
    connector.refresh_from_db()
    assert connector.last_success_at is not None and connector.next_run_at is not None
    assert OpenWebUIConnector.objects.get().total_runs == 1
