"""Admission control: while the workers are too far behind, a batch is answered 429 with a
Retry-After and nothing is stored; single events and importers are never turned away for it,
and nobody is turned away on a guess (no worker judging: the rate is unknown)."""

from __future__ import annotations

from typing import Any

import pytest

from apps.feedback.models import Event
from apps.quality import backlog
from apps.quality.backlog import backlog_estimate
from apps.quality.services import quality_events_judge
from tests.conftest import Api, rating

pytestmark = pytest.mark.django_db


def test_the_estimate_reads_what_waits_and_how_fast_the_judged_id_moves() -> None:
    assert backlog_estimate([]) == (0, None)
    assert backlog_estimate([(0.0, 100, 40)]) == (60, None)  # one sample: no rate yet
    assert backlog_estimate([(0.0, 100, 40), (2.0, 500, 40)]) == (460, None)  # nobody judging
    assert backlog_estimate([(0.0, 100, 40), (1.0, 300, 50), (4.0, 900, 400)]) == (500, 90.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Clock:
    settings.INGEST_BACKLOG_SECONDS = 5
    settings.INGEST_BACKLOG_MIN_EVENTS = 10
    clock = Clock()
    monkeypatch.setattr(backlog, "_clock", clock)
    monkeypatch.setattr(backlog, "_samples", type(backlog._samples)())
    return clock


def batch(prefix: str, count: int) -> list[dict[str, Any]]:
    return [rating(id=f"{prefix}-{i}", rater=f"rater-{i}") for i in range(count)]


def test_a_batch_waits_while_the_workers_are_behind_and_a_single_event_does_not(
    api: Api, clock: Clock
) -> None:
    assert api.post(batch("first", 40)).status_code == 207
    ids = list(Event.objects.order_by("id").values_list("id", flat=True))
    quality_events_judge(event_ids=ids[:2])
    backlog._samples.clear()  # watch from here: 2 of 40 judged
    assert api.post(batch("second", 2)).status_code == 207  # one sample: no rate yet
    clock.now += 4
    quality_events_judge(event_ids=ids[2:6])  # 4 more in 4 s; 36 of the 42 wait

    answer = api.post(batch("third", 3))
    assert answer.status_code == 429, answer.content
    body = answer.json()["error"]
    assert body["code"] == "backlog" and "Nothing was stored" in body["message"]
    # (36 waiting ÷ 1 event/s) − 5 s allowed: back in 31 s.
    assert answer["Retry-After"] == "31"
    assert not Event.objects.filter(client_id__startswith="third-").exists()

    assert api.post(rating(id="a-click")).status_code == 201  # a widget's click is stored
    clock.now += 2
    quality_events_judge(event_ids=list(Event.objects.values_list("id", flat=True)))
    assert api.post(batch("third", 3)).status_code == 207  # caught up: the retry is stored
    assert Event.objects.filter(client_id__startswith="third-").count() == 3


def test_nobody_is_turned_away_on_a_guess(api: Api, clock: Clock, settings: Any) -> None:
    assert api.post(batch("first", 40)).status_code == 207
    clock.now += 10
    # 40 wait and no worker judged any: when they will be judged is unknown, so batches are
    # still stored (the reconciler judges them once a worker runs).
    assert api.post(batch("second", 5)).status_code == 207
    settings.INGEST_BACKLOG_SECONDS = 0  # off
    assert api.post(batch("third", 5)).status_code == 207
