"""The database says what derived work is left, not the broker: events without normalized rows
or a current verdict are found and processed by the drains (what a hint runs), the sweeps (the
reconciler) and `requalify --missing`, whatever happened to the messages."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from apps.feedback.models import Event, Interaction
from apps.feedback.services.ingest import feedback_ingest
from apps.feedback.services.normalize import feedback_backlog_normalize, feedback_pending_normalize
from apps.quality.backlog import events_without_verdict, quality_backlog_judge
from apps.quality.models import Verdict
from tests.conftest import preference, rating

pytestmark = pytest.mark.django_db


@pytest.fixture
def lost_hints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every hint is lost on the way (a broker restarted without persistence, say)."""
    from config import celery

    monkeypatch.setattr(celery, "send_hint", lambda name: False)


def _store(src: Any, events: list[dict[str, Any]]) -> list[int]:
    return [r.id for r in feedback_ingest(source=src.source, items=events)]


def test_events_whose_hints_were_lost_wait_without_rows_or_verdicts(src: Any, lost_hints: None):
    ids = _store(src, [rating(id="a"), preference(id="b")])
    assert Interaction.objects.filter(event_id__in=ids).count() == 0
    assert set(events_without_verdict().values_list("id", flat=True)) == set(ids)


def test_the_drains_find_them_in_the_database_and_do_the_work_once(src: Any, lost_hints: None):
    ids = _store(src, [rating(id=f"r{i}", rater=f"u{i}") for i in range(7)] + [preference()])

    assert feedback_backlog_normalize(batch_size=3) == (8, False)
    assert quality_backlog_judge(batch_size=3)[0].judged == 8
    assert Interaction.objects.filter(event_id__in=ids).count() == 7 + 2
    assert Verdict.objects.filter(event_id__in=ids, is_current=True).count() == 8
    # Run again (a repeated or late hint): nothing left, nothing written twice.
    assert feedback_backlog_normalize() == (0, False)
    assert quality_backlog_judge()[0].judged == 0
    assert Verdict.objects.filter(event_id__in=ids).count() == 8


def test_the_sweep_finds_events_older_than_the_drains_look_back(
    src: Any, lost_hints: None, monkeypatch: pytest.MonkeyPatch
):
    from apps.feedback.services import normalize

    old = _store(src, [rating(id="old")])
    newer = _store(src, [rating(id="newer", rater="u2")])
    normalize._normalize(newer)  # the newest was done; the older one's batch was lost
    monkeypatch.setattr(normalize, "BACKLOG_LOOKBACK_IDS", 0)

    assert feedback_backlog_normalize() == (0, False)  # it looks only past the newest done
    assert feedback_pending_normalize() == 1  # the sweep walks the whole log
    assert Interaction.objects.filter(event_id__in=old).count() == 1


def test_an_event_that_cannot_be_derived_does_not_hold_back_its_batch(
    src: Any, lost_hints: None, monkeypatch: pytest.MonkeyPatch
):
    from apps.feedback.services import normalize

    ids = _store(src, [rating(id="bad"), rating(id="good", rater="u2")])
    real = normalize.derive

    def derive(payload: dict[str, Any]) -> Any:
        if payload["id"] == "bad":
            raise KeyError("responses")
        return real(payload)

    monkeypatch.setattr(normalize, "derive", derive)

    assert feedback_backlog_normalize() == (1, False)  # it ends: the bad one is looked at once
    assert Interaction.objects.filter(event_id=ids[1]).count() == 1


def test_a_drain_out_of_time_says_some_are_left_after_doing_a_batch(src: Any, lost_hints: None):
    # One drain must not hold a worker that also serves other queues for ever.
    ids = _store(src, [rating(id=f"t{i}", rater=f"u{i}") for i in range(5)])

    assert feedback_backlog_normalize(batch_size=2, max_seconds=0) == (2, True)
    summary, more = quality_backlog_judge(batch_size=2, max_seconds=0)
    assert (summary.judged, more) == (2, True)
    assert feedback_backlog_normalize(batch_size=2) == (3, False)
    assert quality_backlog_judge(batch_size=2)[0].judged == 3
    assert Verdict.objects.filter(event_id__in=ids, is_current=True).count() == 5


def test_a_drain_that_runs_out_of_time_hints_its_own_follow_up(
    src: Any, monkeypatch: pytest.MonkeyPatch
):
    from apps.feedback import tasks
    from config import celery

    sent: list[tuple[str, bool]] = []
    monkeypatch.setattr(celery, "send_hint", lambda name, now=False: sent.append((name, now)))
    _store(src, [rating(id=f"h{i}", rater=f"u{i}") for i in range(3)])
    monkeypatch.setattr(tasks, "DRAIN_SECONDS", 0)
    sent.clear()

    tasks.normalize_pending.apply()

    assert sent == [("feedback.normalize_pending", True)]


def test_requalify_missing_judges_only_the_events_without_a_verdict(src: Any, lost_hints: None):
    judged = _store(src, [rating(id="judged")])
    quality_backlog_judge()
    before = Verdict.objects.get(event_id=judged[0], is_current=True)
    waiting = _store(src, [rating(id=f"w{i}", rater=f"u{i}") for i in range(3)])

    out = StringIO()
    call_command("requalify", "--missing", stdout=out, stderr=StringIO())

    assert "judged 3 event(s) without a verdict" in out.getvalue()
    assert Verdict.objects.filter(event_id__in=waiting, is_current=True).count() == 3
    # The event that had a verdict kept the very same one.
    assert Verdict.objects.filter(event_id=judged[0]).get() == before
    assert Event.objects.count() == 4
