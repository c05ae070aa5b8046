"""Curators overrule the filters; every overrule becomes a label; the classifier learns from them;
history is replayed with today's filters; a curator's word survives the replay."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings

from apps.quality.models import (
    CuratorLabel,
    RaterReputation,
    RequalifyJob,
    SpamClassifier,
    Verdict,
    VerdictOverride,
)
from apps.quality.services import (
    classifier_train,
    curator_label_add,
    requalify_job_create,
    requalify_job_run,
    verdict_override,
)
from apps.quality.spam_model import active_model
from tests.conftest import rating
from tests.quality.conftest import current, sms_rows, uid

pytestmark = pytest.mark.django_db(transaction=False)

# A kind of spam the seed corpus never saw: it passes until curators teach the classifier.
NOVEL = "Grandma's secret soup recipe club, members get the weekly soup letter, reply SOUP to join the soup club"


@pytest.fixture
def curator():
    return get_user_model().objects.create_user("cura", password="x" * 12)


def test_an_override_is_a_new_current_verdict_and_a_training_label(store, judge, curator) -> None:
    [event_id] = store([rating(id=uid(), rater="r1", comment=NOVEL)])
    judge([event_id])
    machine = current(event_id)
    assert machine.status == "accepted"
    verdict = verdict_override(
        event_id=event_id, status="rejected", curator=curator, note="soup spam"
    )
    assert (
        current(event_id) == verdict and verdict.origin == "curator" and verdict.curator == curator
    )
    assert Verdict.objects.filter(event_id=event_id).count() == 2, "the machine's verdict is kept"
    override = VerdictOverride.objects.get(event_id=event_id)
    assert override.overruled == machine
    label = CuratorLabel.objects.get(event_id=event_id)
    assert (label.label, label.origin, label.text) == ("spam", "override", NOVEL)
    assert RaterReputation.objects.get(rater_hash=current(event_id).event.rater_hash).flagged == 1
    # Accepting it back makes a ham label and clears the rater's record.
    verdict_override(event_id=event_id, status="accepted", curator=curator)
    assert CuratorLabel.objects.filter(event_id=event_id).order_by("id").last().label == "ham"
    assert RaterReputation.objects.get(rater_hash=current(event_id).event.rater_hash).flagged == 0


def test_overrules_teach_the_classifier_and_a_replay_applies_it(store, judge, curator) -> None:
    soup = [f"{NOVEL} number {i}" for i in range(12)]
    ids = store(
        [
            rating(
                id=uid(), rater=f"s{i}", comment=text, timestamp=f"2026-01-0{1 + i % 9}T10:00:00Z"
            )
            for i, text in enumerate(soup)
        ]
    )
    judge(ids)
    assert {current(i).status for i in ids} == {"accepted"}
    for event_id in ids[:8]:
        verdict_override(event_id=event_id, status="quarantined", curator=curator)
    for label, text in sms_rows()[:120]:  # ordinary curator work on other texts
        curator_label_add(text=text, label=label, curator=curator)
    assert classifier_train(min_new_labels=500) is None, "not enough new labels yet"
    row = classifier_train()
    assert row is not None and row.version == 1 and row.trained_on["curator_spam"] >= 8
    assert active_model().version == "v1"
    job = requalify_job_create(filter_names=["classifier"])
    job = requalify_job_run(job_id=job.pk, chunk_size=5)
    assert job.status == "done" and job.done == job.total == len(ids)
    for event_id in ids[:8]:
        assert current(event_id).origin == "curator", "a replay never overrules a curator"
    for event_id in ids[8:]:
        assert "classifier.spam" in current(event_id).reason_codes
        assert current(event_id).filters["classifier"]["version"] == "1/v1"
    assert SpamClassifier.objects.filter(is_active=True).count() == 1


def test_a_replay_after_a_filter_change_rejudges_history_and_resumes_from_its_cursor(
    store, judge
) -> None:
    text = "Please everyone vote for the second model, it is the best one by far honestly"
    ids = store([rating(id=uid(), rater=f"v{i}", comment=text) for i in range(3)])
    judge(ids)
    assert {current(i).status for i in ids} == {"accepted"}, (
        "three raters are under the flood threshold"
    )
    with override_settings(QUALITY_FLOOD_MIN_RATERS=3):
        job = requalify_job_create(filter_names=["flood"])
        # Stop after the first chunk, as a worker that died would, then resume.
        RequalifyJob.objects.filter(pk=job.pk).update(status="running")
        first = requalify_job_run(
            job_id=job.pk,
            chunk_size=2,
            progress=lambda j: RequalifyJob.objects.filter(pk=j.pk).update(status="cancelled"),
        )
        assert (first.status, first.done, first.cursor) == ("cancelled", 2, ids[1])
        call_command("requalify", resume=job.pk, wait=True, chunk=2)
    job.refresh_from_db()
    assert (job.status, job.done, job.changed) == ("done", 3, 3)
    for event_id in ids:
        verdict = current(event_id)
        assert verdict.reason_codes == ["flood.many_raters"]
        assert (
            verdict.filters["junk"]
            == Verdict.objects.filter(event_id=event_id).order_by("id").first().filters["junk"]
        )


def test_the_requalify_command_queues_a_background_job_and_reports_it(
    store, judge, capsys, django_capture_on_commit_callbacks
) -> None:
    ids = store([rating(id=uid(), comment="fine")])
    judge(ids)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("requalify", since="2000-01-01", filters=["junk"])  # Celery is eager in tests
    out = capsys.readouterr().out
    assert "queued on the quality queue" in out
    job = RequalifyJob.objects.get()
    assert job.status == "done" and job.filter_names == ["junk"]
    call_command("requalify", status=True)
    assert f"job {job.pk}: done, 1/1 events" in capsys.readouterr().out


def test_an_unknown_filter_name_is_refused() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="unknown filter nope"):
        call_command("requalify", filters=["nope"])


def test_the_train_command_makes_a_new_active_version(curator, capsys) -> None:
    for label, text in sms_rows()[:60]:
        curator_label_add(text=text, label=label, curator=curator)
    call_command("train_spam_classifier")
    assert "spam classifier v1 is active" in capsys.readouterr().out
    call_command("train_spam_classifier", if_new_labels=5)
    assert "nothing trained" in capsys.readouterr().out
