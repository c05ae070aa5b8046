"""Decisions: accept and reject overrule the verdict, tags, gold, undo restores what was,
bulk is all or nothing under one batch, and only curators decide."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.curation import selectors, services
from apps.curation.models import Decision, EventTag
from apps.quality.models import CuratorLabel, Verdict
from apps.quality.selectors import verdict_current
from tests.conftest import rating
from tests.curation.conftest import user_in

pytestmark = pytest.mark.django_db

SPAM = (
    "WIN a FREE iPhone now!!! Click http://win-prizes.example to claim your prize, txt WIN to 80082"
)


def test_accept_overrules_the_verdict_and_records_who_and_when(add_events, curator):
    (event,) = add_events(rating(comment=SPAM))
    before = verdict_current(event_id=event.id)
    assert before.status in ("quarantined", "rejected")
    decision = services.decision_accept(event_id=event.id, user=curator, note="a real user")
    assert decision.user == curator and decision.created_at is not None
    assert decision.previous_verdict_id == before.id
    now = verdict_current(event_id=event.id)
    assert now.status == "accepted" and now.origin == "curator" and now.curator == curator
    assert list(selectors.accepted_event_ids()) == [event.id]


def test_reject_needs_one_of_the_four_reasons(add_events, curator):
    (event,) = add_events(rating())
    with pytest.raises(ValidationError) as err:
        services.decision_reject(event_id=event.id, user=curator, reason="meh")
    assert "reason" in err.value.message_dict
    assert not Decision.objects.exists()
    services.decision_reject(event_id=event.id, user=curator, reason="pii")
    assert verdict_current(event_id=event.id).status == "rejected"
    assert list(selectors.rejected_event_ids()) == [event.id]


def test_undoing_a_reject_brings_back_the_pipeline_verdict_and_withdraws_the_label(
    add_events, curator
):
    (event,) = add_events(rating(comment="Clear and correct, thanks."))
    pipeline = verdict_current(event_id=event.id)
    assert pipeline.status == "accepted"
    decision = services.decision_reject(event_id=event.id, user=curator, reason="spam")
    assert CuratorLabel.objects.filter(event=event).count() == 1
    services.decision_undo(decision_id=decision.id, user=curator)
    decision.refresh_from_db()
    assert decision.undone_at is not None and decision.undone_by == curator
    assert verdict_current(event_id=event.id).id == pipeline.id
    assert not CuratorLabel.objects.filter(event=event).exists()
    assert list(selectors.rejected_event_ids()) == []
    with pytest.raises(ValidationError):
        services.decision_undo(decision_id=decision.id, user=curator)


def test_undo_of_an_unjudged_event_leaves_it_unjudged(add_events, curator):
    (event,) = add_events(rating(), judge=False)
    decision = services.decision_accept(event_id=event.id, user=curator)
    services.decision_undo(decision_id=decision.id, user=curator)
    assert verdict_current(event_id=event.id) is None


def test_undoing_an_older_decision_keeps_the_newer_verdict(add_events, curator):
    (event,) = add_events(rating())
    first = services.decision_reject(event_id=event.id, user=curator, reason="unsafe")
    services.decision_accept(event_id=event.id, user=curator)
    services.decision_undo(decision_id=first.id, user=curator)
    assert verdict_current(event_id=event.id).status == "accepted"
    assert list(selectors.accepted_event_ids()) == [event.id]


def test_tag_untag_and_their_undo(add_events, curator):
    (event,) = add_events(rating())
    tagged = services.decision_tag(event_id=event.id, user=curator, tag="  Code  Review ")
    assert selectors.event_tags(event_id=event.id) == ["code review"]
    untagged = services.decision_untag(event_id=event.id, user=curator, tag="code review")
    assert not EventTag.objects.exists()
    services.decision_undo(decision_id=untagged.id, user=curator)
    assert selectors.event_tags(event_id=event.id) == ["code review"]
    services.decision_undo(decision_id=tagged.id, user=curator)
    assert selectors.event_tags(event_id=event.id) == []
    with pytest.raises(ValidationError):
        services.decision_tag(event_id=event.id, user=curator, tag="a,b")


def test_gold_keeps_the_better_reply_and_checks_the_position(add_events, curator):
    (event,) = add_events(rating(response="Sydney.", rating=-1))
    gold = services.decision_gold(event_id=event.id, user=curator, text="Canberra is the capital.")
    assert list(selectors.gold_decisions()) == [gold]
    with pytest.raises(ValidationError) as err:
        services.decision_gold(event_id=event.id, user=curator, text="x", position=1)
    assert "position" in err.value.message_dict
    with pytest.raises(ValidationError):
        services.decision_gold(event_id=event.id, user=curator, text="   ")
    services.decision_undo(decision_id=gold.id, user=curator)
    assert list(selectors.gold_decisions()) == []


def test_bulk_is_one_batch_and_undoes_as_a_whole(add_events, curator):
    events = add_events(*[rating(comment=f"fine answer number {i}") for i in range(5)])
    ids = [e.id for e in events]
    batch, decisions = services.decisions_bulk(
        event_ids=ids, action="reject", reason="low_quality", user=curator
    )
    assert len(decisions) == 5 and {d.batch for d in decisions} == {batch}
    assert Verdict.objects.filter(event_id__in=ids, is_current=True, status="rejected").count() == 5
    services.decision_batch_undo(batch=batch, user=curator)
    assert Verdict.objects.filter(event_id__in=ids, is_current=True, status="accepted").count() == 5


def test_bulk_changes_nothing_when_one_event_is_missing(add_events, curator):
    events = add_events(rating(), rating())
    with pytest.raises(ValidationError) as err:
        services.decisions_bulk(event_ids=[events[0].id, 999_999], action="accept", user=curator)
    assert "events" in err.value.message_dict
    assert not Decision.objects.exists()


def test_bulk_refuses_more_than_the_limit(add_events, curator, settings):
    settings.CURATION_BULK_MAX = 2
    events = add_events(rating(), rating(), rating())
    with pytest.raises(ValidationError):
        services.decisions_bulk(event_ids=[e.id for e in events], action="accept", user=curator)


def test_only_curators_and_admins_decide(add_events, viewer):
    (event,) = add_events(rating())
    with pytest.raises(PermissionDenied):
        services.decision_accept(event_id=event.id, user=viewer)
    admin = user_in("admin", "ada")
    services.decision_accept(event_id=event.id, user=admin)
    assert admin.has_perm("training.add_trainingrun") and admin.has_perm("registry.change_alias")
    assert not viewer.has_perm("curation.add_decision")
    assert viewer.has_perm("feedback.view_event")
