"""Judging stored events: a verdict for each, beside the raw event, idempotent, nothing lost."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, transaction

from apps.feedback.models import Event
from apps.quality import selectors
from apps.quality.models import EventSignal, Verdict
from apps.quality.tasks import judge_events
from tests.conftest import rating
from tests.quality.conftest import current, uid

pytestmark = pytest.mark.django_db(transaction=False)

SPAM = "WINNER!! You have been selected for a £1000 cash prize. Call [PHONE] now to claim, visit www.win-cash.biz"


def test_every_event_gets_a_verdict_with_reasons_versions_and_a_trust_weight(store, judge) -> None:
    ids = store(
        [
            rating(id=uid(), comment="Great, thanks!"),
            rating(id=uid(), comment=SPAM),
            rating(id=uid(), comment="asdfghjkl qwertyuiop"),
        ]
    )
    summary = judge(ids)
    assert summary.judged == 3 and summary.written == 3
    clean, spam, junk = (current(i) for i in ids)
    assert (clean.status, clean.reasons) == ("accepted", [])
    assert 0 < clean.trust_weight <= 1
    assert spam.status == "rejected" and spam.trust_weight == 0
    assert {"advertising.link", "classifier.spam"} <= set(spam.reason_codes)
    assert all(reason["message"].endswith(".") and reason["filter"] for reason in spam.reasons)
    assert junk.status == "quarantined" and junk.reason_codes == ["junk.gibberish"]
    assert set(spam.filters) == {
        "unreadable",
        "hold",
        "junk",
        "advertising",
        "arena",
        "classifier",
        "flood",
        "velocity",
        "reputation",
    }
    assert spam.filters["classifier"]["version"].startswith("1/seed-")


def test_the_raw_event_is_never_changed_and_the_database_refuses_to(store, judge) -> None:
    [event_id] = store([rating(id=uid(), comment=SPAM)])
    before = Event.objects.get(pk=event_id)
    judge([event_id])
    after = Event.objects.get(pk=event_id)
    assert (after.status, after.payload) == (before.status, before.payload)
    with pytest.raises(DatabaseError), transaction.atomic():
        Event.objects.filter(pk=event_id).update(status="quarantined")


def test_judging_twice_does_the_work_once(store, judge) -> None:
    ids = store([rating(id=uid(), comment="The answer is outdated."), rating(id=uid())])
    judge(ids)
    again = judge(ids)
    assert (again.judged, again.skipped, again.written) == (0, 2, 0)
    forced = judge(ids, force=True)
    assert (forced.judged, forced.written) == (2, 0), "the same outcome is not written again"
    assert Verdict.objects.filter(event_id__in=ids).count() == 2
    assert EventSignal.objects.filter(event_id__in=ids).count() == 2


def test_quarantined_and_rejected_events_are_kept_visible_and_kept_out_of_datasets(
    store, judge
) -> None:
    good, bad = store(
        [rating(id=uid(), comment="Correct and concise."), rating(id=uid(), comment=SPAM)]
    )
    judge([good, bad])
    assert Event.objects.filter(pk__in=[good, bad]).count() == 2
    assert list(selectors.events_usable().values_list("id", flat=True)) == [good]
    held = selectors.events_with_status(status="rejected").get()
    assert held.pk == bad and held.current_verdicts[0].status == "rejected"


def test_a_source_that_holds_everything_gets_its_events_quarantined(
    make_source, store, judge
) -> None:
    held = make_source("careful-app", hold_for_review=True)
    [event_id] = store([rating(id=uid(), comment="Fine answer.")], source=held.source)
    judge([event_id])
    assert current(event_id).reason_codes == ["hold.source_review"]


def test_the_task_takes_ids_and_judges_them(store) -> None:
    ids = store([rating(id=uid(), comment="ok")])
    result = judge_events.delay(ids).get()
    assert result["judged"] == 1
    assert (
        selectors.verdict_as_dict(selectors.verdict_current(event_id=ids[0]))["status"]
        == "accepted"
    )
