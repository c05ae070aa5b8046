"""End to end with a real Celery worker process: events posted through the API are stored at
once, and the normalized rows (interactions, ratings, comparisons) appear when a worker that
shares nothing with the test but the database and the broker has done its job."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from apps.core.health import queue_depths
from apps.feedback.models import Comparison, Event, Interaction, Rating
from apps.quality.models import Verdict
from tests.conftest import Api, preference, rating
from tests.core.conftest import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKER_TIMEOUT_S = 60


def wait_for(
    condition: Callable[[], bool], *, timeout: float, what: str, log: Callable[[], str]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    pytest.fail(f"{what} within {timeout}s; the worker's log ends with:\n{log()}")


def ranking(**overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "type": "ranking",
        "id": "evt-r",
        "rater": "user-2",
        "messages": [{"role": "user", "content": "Name a prime number."}],
        "responses": [
            {"model": "m-a", "content": "4"},
            {"model": "m-b", "content": "7"},
            {"model": "m-c", "content": "9"},
        ],
        "ranking": [1, 2, 0],
    }
    event.update(overrides)
    return event


def test_a_real_worker_derives_the_normalized_rows_of_events_posted_through_the_api(
    make_source, client, live_broker, tmp_path
):
    api = Api(client, make_source("worker-e2e").secret)
    response = api.post(
        [rating(id="w-rating"), preference(id="w-preference"), ranking(id="w-ranking")]
    )
    assert response.status_code == 207
    assert [item["status"] for item in response.json()["results"]] == ["accepted"] * 3

    # Not eager: the raw events are stored, the derivation waits on the broker for a worker.
    assert Event.objects.count() == 3
    assert Interaction.objects.count() == 0
    assert queue_depths()["ingest"] == 1
    assert queue_depths()["quality"] == 1

    worker = WorkerProcess(live_broker, tmp_path / "worker.log")
    try:
        wait_for(
            lambda: (
                Comparison.objects.count() == 4
                and Rating.objects.count() == 1
                and Verdict.objects.filter(is_current=True).count() == 3
            ),
            timeout=WORKER_TIMEOUT_S,
            what="the worker did not derive 1 rating and 4 comparisons and judge 3 events",
            log=worker.log,
        )
        # A drain that ran past its time slice (a loaded machine) hints a follow-up of its own:
        # the queues are empty once the worker has taken every message, not at the first verdict.
        wait_for(
            lambda: queue_depths()["ingest"] == 0 and queue_depths()["quality"] == 0,
            timeout=WORKER_TIMEOUT_S,
            what="the worker left messages on the ingest or quality queue",
            log=worker.log,
        )
        assert worker.proc.poll() is None, worker.log()
    finally:
        worker.stop()

    assert Interaction.objects.count() == 1 + 2 + 3
    thumbs = Rating.objects.get()
    assert (thumbs.value, thumbs.model, thumbs.event.client_id) == (1, "llama3.1:8b", "w-rating")
    chosen = Comparison.objects.get(event__client_id="w-preference")
    assert (chosen.model_a, chosen.model_b, chosen.outcome) == ("a", "b", "a")
    # ranking [1, 2, 0], best first: m-b beats m-c beats m-a.
    pairs = {
        (c.model_a, c.model_b): c.outcome
        for c in Comparison.objects.filter(event__client_id="w-ranking")
    }
    assert pairs == {("m-a", "m-b"): "b", ("m-a", "m-c"): "b", ("m-b", "m-c"): "a"}
    assert queue_depths()["ingest"] == 0
    # The quality pipeline judged each event, on its own queue, and kept all three.
    verdicts = Verdict.objects.filter(is_current=True)
    assert {v.event.client_id for v in verdicts} == {"w-rating", "w-preference", "w-ranking"}
    assert all(v.status == "accepted" for v in verdicts), [v.reasons for v in verdicts]
    assert queue_depths()["quality"] == 0


def test_a_worker_stops_cleanly_on_sigterm(live_broker, tmp_path):
    worker = WorkerProcess(live_broker, tmp_path / "worker.log")
    try:
        wait_for(
            lambda: "ready." in worker.log(),
            timeout=WORKER_TIMEOUT_S,
            what="the worker did not start",
            log=worker.log,
        )
    finally:
        code = worker.stop()
    assert code == 0, worker.log()
