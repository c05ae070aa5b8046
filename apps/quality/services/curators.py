"""Curators overrule verdicts: an override is a new current verdict that stands until a curator
changes it, and a label the classifier learns from."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.feedback.models import Event
from apps.feedback.selectors import unreadable_values
from apps.quality.models import CuratorLabel, Verdict, VerdictOverride, VoteSignal
from apps.quality.pipeline import ACTION_OF, Judgement, make_view
from apps.quality.services.judging import _EVENT_FIELDS, _update_reputations
from apps.quality.text import event_texts


def verdict_override(
    *,
    event_id: int,
    status: str,
    curator: Any = None,
    note: str = "",
    label: str | None = None,
) -> Verdict:
    """A curator sets EVENT_ID's status, overruling the filters. The event's rater text becomes a
    training label for the classifier: LABEL, or by default ham when accepted and spam when not."""
    if status not in Verdict.Status.values:
        raise ValueError(f"status must be one of {', '.join(Verdict.Status.values)}")
    if label is not None and label not in CuratorLabel.Label.values:
        raise ValueError("label must be 'spam' or 'ham'")
    with transaction.atomic():
        event = Event.objects.only(*_EVENT_FIELDS).get(pk=event_id)
        problems = (
            unreadable_values(event.payload, event.occurred_at) if status == "accepted" else []
        )
        if problems:
            raise ValidationError(
                {"event": f"Event {event_id} cannot be accepted: {'; '.join(problems)}."}
            )
        old = Verdict.objects.select_for_update().filter(event=event, is_current=True).first()
        if old is not None:
            old.is_current = False
            old.save(update_fields=["is_current"])
        who = getattr(curator, "username", "") or "a curator"
        sentence = f"{who} set this to {status}" + (f": {note}" if note else ".")
        verdict = Verdict(
            event=event,
            status=status,
            score=0.0 if status == "accepted" else 1.0,
            trust_weight=1.0 if status == "accepted" else 0.0,
            reasons=[{"code": "curator.override", "message": sentence, "filter": "curator"}],
            filters={"curator": {"version": "1", "action": ACTION_OF[status]}},
            pipeline_version=old.pipeline_version if old else "curator",
            origin=Verdict.Origin.CURATOR,
            curator=curator,
        )
        verdict.full_clean()
        verdict.save()
        override = VerdictOverride(
            event=event, overruled=old, verdict=verdict, status=status, note=note, curator=curator
        )
        override.full_clean()
        override.save()
        text = event_texts(event.payload).rater_text.strip()
        if text:
            CuratorLabel.objects.create(
                text=text,
                label=label or ("ham" if status == "accepted" else "spam"),
                origin=CuratorLabel.Origin.OVERRIDE,
                event=event,
                override=override,
                curator=curator,
            )
        view = make_view(
            id=event.id,
            source_id=event.source_id,
            payload=event.payload,
            rater_hash=event.rater_hash,
            ip_hash=event.ip_hash,
            status=event.status,
            occurred_at=event.occurred_at,
            received_at=event.received_at,
        )
        before = None if old is None else {"status": old.status}
        judgement = Judgement(
            event_id=event.id,
            status=status,
            score=verdict.score,
            trust_weight=verdict.trust_weight,
            reasons=verdict.reasons,
            filters={},
            pipeline_version="",
        )
        _update_reputations([view], [(view, judgement, before)], None)
        if view.votes:
            VoteSignal.objects.filter(event_id=event.id).update(counted=status == "accepted")
    return verdict


def curator_label_add(
    *, text: str, label: str, curator: Any = None, event_id: int | None = None
) -> CuratorLabel:
    """A curator's spam/ham judgement on a text without overruling any verdict (e.g. a review)."""
    row = CuratorLabel(
        text=text.strip(),
        label=label,
        origin=CuratorLabel.Origin.REVIEW,
        event_id=event_id,
        curator=curator,
    )
    row.full_clean()
    row.save()
    return row
