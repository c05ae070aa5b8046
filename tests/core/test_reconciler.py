"""No broker fault needs a person: with real worker processes, events whose messages were lost
(a broker restarted without persistence) or taken by a worker that was killed with SIGKILL in
the middle of its batch all get their normalized rows and a verdict, without any command: a
worker that starts sweeps the database for what is left undone."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from apps.core.health import queue_depths
from apps.feedback.models import Event, Interaction
from apps.quality.models import Verdict
from tests.conftest import Api, rating
from tests.core.conftest import LiveBroker, WorkerProcess
from tests.core.test_worker import WORKER_TIMEOUT_S, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _empty_the_broker(broker: LiveBroker) -> None:
    """What a Redis restarted without persistence does: every message gone."""
    if broker.url.startswith("redis"):
        import redis

        redis.Redis.from_url(broker.url).flushdb()
        return
    folder = Path(broker.env["SINKHOLE_DATA_DIR"]) / "broker" / "queue"
    for message in folder.glob("*.msg"):
        message.unlink()


def _all_done(ids: list[int]) -> bool:
    return Interaction.objects.filter(event_id__in=ids).values(
        "event_id"
    ).distinct().count() == len(ids) and Verdict.objects.filter(
        event_id__in=ids, is_current=True
    ).count() == len(ids)


def _post(api: Api, count: int, prefix: str) -> list[int]:
    response = api.post([rating(id=f"{prefix}-{i}", rater=f"u{i % 50}") for i in range(count)])
    assert response.status_code == 207, response.content
    return [item["id"] for item in response.json()["results"]]


def test_events_whose_messages_the_broker_lost_are_done_when_a_worker_starts(
    make_source: Any, client: Any, live_broker: LiveBroker, tmp_path: Path
) -> None:
    api = Api(client, make_source("lost-messages").secret)
    ids = _post(api, 40, "lost")
    _empty_the_broker(live_broker)
    assert sum(queue_depths().values()) == 0
    assert Interaction.objects.count() == 0

    worker = WorkerProcess(live_broker, tmp_path / "worker.log")
    try:
        wait_for(
            lambda: _all_done(ids),
            timeout=WORKER_TIMEOUT_S,
            what="the starting worker did not find the 40 events whose hints were lost",
            log=worker.log,
        )
    finally:
        worker.stop()


def test_a_worker_killed_mid_batch_leaves_nothing_undone_for_the_next_one(
    make_source: Any, client: Any, live_broker: LiveBroker, tmp_path: Path
) -> None:
    api = Api(client, make_source("killed-worker").secret)
    ids = _post(api, 1000, "kill")
    first = WorkerProcess(live_broker, tmp_path / "first.log")
    try:
        wait_for(
            lambda: "judge_pending" in first.log() or "normalize_pending" in first.log(),
            timeout=WORKER_TIMEOUT_S,
            what="the first worker did not take a batch",
            log=first.log,
        )
        time.sleep(0.3)  # inside its first batch
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=10)
    finally:
        first.stop()
    assert first.proc.returncode == -signal.SIGKILL
    assert Event.objects.filter(id__in=ids).count() == 1000  # the log never loses an event

    second = WorkerProcess(live_broker, tmp_path / "second.log")
    try:
        wait_for(
            lambda: _all_done(ids),
            timeout=WORKER_TIMEOUT_S * 2,
            what="the next worker did not finish the 1,000 events the killed one left",
            log=second.log,
        )
    finally:
        second.stop()
    # Each event was derived and judged once, whatever the killed worker had begun.
    assert Interaction.objects.filter(event_id__in=ids).count() == 1000
    assert Verdict.objects.filter(event_id__in=ids).count() == 1000
