"""/status/ with a real Celery worker process: before it starts, the page says no worker answers,
shows the messages waiting per queue and the oldest event waiting for a verdict; once it runs,
the page shows it alive, the queues it consumes, what it has run, empty queues and no backlog;
while it runs a task (held by a lock), the task's name."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import psycopg
import pytest
from django.db import connection

from apps.quality.models import Verdict
from tests.conftest import Api, rating
from tests.core.conftest import WorkerProcess, database_url_of_the_test_db

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TIMEOUT_S = 60


def page_until(
    read: Callable[[], str], condition: Callable[[str], bool], *, what: str, log: Callable[[], str]
) -> str:
    deadline = time.monotonic() + TIMEOUT_S
    html = read()
    while not condition(html):
        if time.monotonic() > deadline:
            pytest.fail(
                f"{what} within {TIMEOUT_S}s; the page:\n{html}\nthe worker's log:\n{log()}"
            )
        time.sleep(0.5)
        html = read()
    return html


def queue_row(html: str, queue: str) -> str:
    found = re.search(rf"<tr><td>{queue}</td><td>(\d+)</td></tr>", html)
    return found.group(1) if found else ""


def test_the_status_page_shows_a_real_worker_its_queues_what_it_ran_and_the_backlog(
    make_source, client, django_user_model, live_broker, tmp_path
) -> None:
    api = Api(client, make_source("status-e2e").secret)
    stored = api.post([rating(id="s-1", rater="a"), rating(id="s-2", rater="b")]).json()
    first = stored["results"][0]["id"]
    client.force_login(django_user_model.objects.create_superuser("ops", password="pw-ops"))

    def read() -> str:
        return client.get("/status/").content.decode()

    before = read()
    assert 'id="no-workers"' in before
    assert "2 events wait for a verdict" in before
    assert f'href="/events/{first}/">#{first}</a>' in before
    assert queue_row(before, "quality") == "1" and queue_row(before, "ingest") == "1"

    worker = WorkerProcess(live_broker, tmp_path / "worker.log")
    try:
        page_until(
            lambda: str(Verdict.objects.filter(is_current=True).count()),
            lambda n: n == "2",
            what="the worker did not judge both events",
            log=worker.log,
        )
        after = page_until(
            read,
            lambda html: 'class="worker"' in html and "quality.judge_pending" in html,
            what="the page did not show the worker and the tasks it ran",
            log=worker.log,
        )
    finally:
        worker.stop()

    assert 'id="no-workers"' not in after, after
    assert "1 alive" in after
    assert "datasets, default, ingest, quality, training" in after  # the queues it consumes
    assert "feedback.normalize_pending" in after  # what it ran
    assert "Every event has its verdict." in after
    assert queue_row(after, "quality") == "0" and queue_row(after, "ingest") == "0"


def test_the_status_page_shows_the_task_a_worker_is_running(
    make_source, client, django_user_model, live_broker, tmp_path
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("holds the worker inside a task with a PostgreSQL table lock")
    api = Api(client, make_source("status-busy").secret)
    api.post([rating(id="b-1", rater="a")])
    client.force_login(django_user_model.objects.create_superuser("ops", password="pw-ops"))

    # Another connection locks the table the normalizing task writes: the task starts and waits.
    blocker = psycopg.connect(database_url_of_the_test_db(), autocommit=False)
    blocker.execute("LOCK TABLE feedback_interaction IN ACCESS EXCLUSIVE MODE")
    worker = WorkerProcess(live_broker, tmp_path / "worker.log", pool="threads")
    try:
        busy = page_until(
            lambda: client.get("/status/").content.decode(),
            lambda html: "feedback.normalize_pending" in running_now(html),
            what="the page did not show the task the worker runs",
            log=worker.log,
        )
        blocker.rollback()
        page_until(
            lambda: str(Verdict.objects.filter(is_current=True).count()),
            lambda n: n == "1",
            what="the worker did not finish once the lock was gone",
            log=worker.log,
        )
    finally:
        blocker.close()
        worker.stop()

    assert "1 alive" in busy


def running_now(html: str) -> str:
    """The 'running now' cell of the first worker row."""
    found = re.search(r'<tr class="worker"><td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td>', html)
    return found.group(1) if found else ""
