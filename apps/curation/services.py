"""Curators' decisions: accept, reject with a reason, tag, untag, edit to gold, undo, and the
bulk variants. Each writes one `Decision` row (who and when) in one transaction; the raw event
is never touched.

Accept and reject also overrule the quality verdict (`apps.quality.services.verdict_override`),
so datasets and leaderboards, which read the current verdict, follow the curator. The decision
keeps the verdict it made and the one that was current before.

**Undo** stamps `undone_at`/`undone_by` on the decision (nothing is deleted) and reverses its
effect:
- accept/reject: if the verdict the decision made is still the event's current one, the verdict
  that was current before becomes current again (an event that was not judged goes back to
  unjudged), and the spam/ham label the override gave the classifier is withdrawn. If something
  newer replaced the verdict meanwhile (another decision, a re-judgement), that newer verdict
  stands: undo only marks the decision.
- tag: the tag goes, unless a later tag decision holds it; untag: the tag comes back.
- gold: the gold reply stops counting (datasets read only live gold decisions).
A bulk decision is undone as a whole by its batch id."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.curation.models import Decision, EventTag
from apps.feedback.models import Event
from apps.quality.models import CuratorLabel, Verdict, VerdictOverride, VoteSignal
from apps.quality.services import verdict_override

TAG_MAX = 64
NOTE_MAX = 500
GOLD_MAX = 100_000
REASONS = tuple(Decision.Reason.values)
ACTIONS = tuple(Decision.Action.values)
STATUS_OF = {"accept": "accepted", "reject": "rejected"}


def bulk_max() -> int:
    """The most events one bulk decision may touch (CURATION_BULK_MAX, default 5,000)."""
    return settings.CURATION_BULK_MAX


def _require_curator(user: Any) -> None:
    if user is None or not getattr(user, "is_authenticated", False):
        raise PermissionDenied("Log in as a curator to decide.")
    if not user.has_perm("curation.add_decision"):
        raise PermissionDenied("Deciding needs the curator or admin role.")


def _clean_tag(tag: str) -> str:
    tag = " ".join((tag or "").split()).lower()
    if not tag:
        raise ValidationError({"tag": "Give a tag."})
    if len(tag) > TAG_MAX:
        raise ValidationError({"tag": f"At most {TAG_MAX} characters."})
    if "," in tag:
        raise ValidationError({"tag": "A tag cannot hold a comma."})
    return tag


def _clean_note(note: str) -> str:
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise ValidationError({"note": f"At most {NOTE_MAX} characters."})
    return note


def _event(event_id: int) -> Event:
    event = Event.objects.only("id", "type", "payload").filter(pk=event_id).first()
    if event is None:
        raise ValidationError({"event": f"No event {event_id}."})
    return event


def _judge(
    *, event_id: int, action: str, user: Any, reason: str, note: str, batch: uuid.UUID | None
) -> Decision:
    previous = Verdict.objects.filter(event_id=event_id, is_current=True).first()
    sentence = note or (f"reason: {Decision.Reason(reason).label}" if reason else "")
    label = None
    if action == "reject" and reason in ("low_quality", "pii"):
        label = "ham"  # weak or leaky is not spam: do not teach the spam classifier otherwise
    verdict = verdict_override(
        event_id=event_id, status=STATUS_OF[action], curator=user, note=sentence, label=label
    )
    decision = Decision(
        event_id=event_id,
        action=action,
        reason=reason,
        note=note,
        batch=batch,
        user=user,
        verdict=verdict,
        previous_verdict=previous,
    )
    decision.full_clean(exclude=["event", "user", "verdict", "previous_verdict", "undone_by"])
    decision.save()
    return decision


def decision_accept(
    *, event_id: int, user: Any, note: str = "", batch: uuid.UUID | None = None
) -> Decision:
    """The curator stands behind EVENT_ID: its verdict becomes accepted."""
    _require_curator(user)
    note = _clean_note(note)
    with transaction.atomic():
        _event(event_id)
        return _judge(
            event_id=event_id, action="accept", user=user, reason="", note=note, batch=batch
        )


def decision_reject(
    *, event_id: int, user: Any, reason: str, note: str = "", batch: uuid.UUID | None = None
) -> Decision:
    """The curator rejects EVENT_ID for REASON (spam, low_quality, unsafe, pii)."""
    _require_curator(user)
    if reason not in REASONS:
        raise ValidationError({"reason": f"Give one of {', '.join(REASONS)}."})
    note = _clean_note(note)
    with transaction.atomic():
        _event(event_id)
        return _judge(
            event_id=event_id, action="reject", user=user, reason=reason, note=note, batch=batch
        )


def decision_tag(
    *, event_id: int, user: Any, tag: str, note: str = "", batch: uuid.UUID | None = None
) -> Decision:
    """Put TAG on EVENT_ID (a no-op on the tags when it has it already; the decision is kept)."""
    _require_curator(user)
    tag, note = _clean_tag(tag), _clean_note(note)
    with transaction.atomic():
        _event(event_id)
        decision = Decision.objects.create(
            event_id=event_id, action="tag", tag=tag, note=note, batch=batch, user=user
        )
        EventTag.objects.get_or_create(event_id=event_id, name=tag, defaults={"decision": decision})
        return decision


def decision_untag(
    *, event_id: int, user: Any, tag: str, note: str = "", batch: uuid.UUID | None = None
) -> Decision:
    _require_curator(user)
    tag, note = _clean_tag(tag), _clean_note(note)
    with transaction.atomic():
        _event(event_id)
        if not EventTag.objects.filter(event_id=event_id, name=tag).exists():
            raise ValidationError({"tag": f"Event {event_id} has no tag {tag!r}."})
        decision = Decision.objects.create(
            event_id=event_id, action="untag", tag=tag, note=note, batch=batch, user=user
        )
        EventTag.objects.filter(event_id=event_id, name=tag).delete()
        return decision


def decision_gold(
    *, event_id: int, user: Any, text: str, position: int = 0, note: str = ""
) -> Decision:
    """The curator's better reply for response POSITION of EVENT_ID. Datasets make it an SFT row
    and a DPO pair (gold chosen, the original rejected)."""
    _require_curator(user)
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": "Write the better reply."})
    if len(text) > GOLD_MAX:
        raise ValidationError({"text": f"At most {GOLD_MAX:,} characters."})
    if "\x00" in text:
        raise ValidationError({"text": "Null characters are not allowed."})
    note = _clean_note(note)
    with transaction.atomic():
        event = _event(event_id)
        responses = event.payload.get("responses") if isinstance(event.payload, dict) else None
        count = len(responses) if isinstance(responses, list) and responses else 1
        if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position < count:
            raise ValidationError({"position": f"Give a response position from 0 to {count - 1}."})
        return Decision.objects.create(
            event_id=event_id,
            action="gold",
            gold_response=text,
            position=position,
            note=note,
            user=user,
        )


def decision_undo(*, decision_id: int, user: Any) -> Decision:
    """Undo one decision (see the module's docstring for what that restores)."""
    _require_curator(user)
    with transaction.atomic():
        decision = Decision.objects.select_for_update().filter(pk=decision_id).first()
        if decision is None:
            raise ValidationError({"decision": f"No decision {decision_id}."})
        if decision.undone_at is not None:
            raise ValidationError({"decision": "This decision is undone already."})
        _undo(decision, user)
        return decision


def decision_batch_undo(*, batch: uuid.UUID, user: Any) -> list[Decision]:
    """Undo every live decision of one bulk decision, newest first."""
    _require_curator(user)
    with transaction.atomic():
        decisions = list(
            Decision.objects.select_for_update()
            .filter(batch=batch, undone_at__isnull=True)
            .order_by("-id")
        )
        if not decisions:
            raise ValidationError({"batch": "No live decision in this batch."})
        for decision in decisions:
            _undo(decision, user)
        return decisions


def _undo(decision: Decision, user: Any) -> None:
    now = timezone.now()
    if decision.action in STATUS_OF:
        _restore_verdict(decision)
    elif decision.action == "tag":
        tag = EventTag.objects.filter(event_id=decision.event_id, name=decision.tag).first()
        newer_tag = (
            Decision.objects.filter(
                event_id=decision.event_id,
                action="tag",
                tag=decision.tag,
                undone_at__isnull=True,
                id__gt=decision.id,
            )
            .exclude(pk=decision.pk)
            .exists()
        )
        if tag is not None and not newer_tag:
            tag.delete()
    elif decision.action == "untag":
        EventTag.objects.get_or_create(
            event_id=decision.event_id, name=decision.tag, defaults={"decision": decision}
        )
    decision.undone_at = now
    decision.undone_by = user
    decision.save(update_fields=["undone_at", "undone_by"])


def _restore_verdict(decision: Decision) -> None:
    """Bring back the verdict that was current before DECISION, if DECISION's is still current."""
    current = (
        Verdict.objects.select_for_update()
        .filter(event_id=decision.event_id, is_current=True)
        .first()
    )
    if current is None or decision.verdict_id is None or current.pk != decision.verdict_id:
        return  # something newer stands
    # The override's spam/ham label must not keep teaching the classifier.
    CuratorLabel.objects.filter(override__verdict_id=current.pk).delete()
    current.is_current = False
    current.save(update_fields=["is_current"])
    previous = decision.previous_verdict
    if previous is not None:
        Verdict.objects.filter(pk=previous.pk).update(is_current=True)
    accepted = previous is not None and previous.status == "accepted"
    VoteSignal.objects.filter(event_id=decision.event_id).update(counted=accepted)
    _ = VerdictOverride  # (the override row stays: it is the record that a curator overruled)


# --- bulk ---------------------------------------------------------------------------------------


def decisions_bulk(
    *,
    event_ids: Iterable[int],
    action: str,
    user: Any,
    reason: str = "",
    tag: str = "",
    note: str = "",
) -> tuple[uuid.UUID, list[Decision]]:
    """One decision (accept, reject, tag, untag) on many events, all or nothing, under one batch
    id (undo it with `decision_batch_undo`). Untag skips events without the tag."""
    _require_curator(user)
    ids = sorted({int(i) for i in event_ids})
    if action not in ("accept", "reject", "tag", "untag"):
        raise ValidationError({"action": "Give accept, reject, tag or untag."})
    if not ids:
        raise ValidationError({"events": "Select at least one event."})
    if len(ids) > bulk_max():
        raise ValidationError(
            {"events": f"At most {bulk_max():,} events in one bulk decision; narrow the filter."}
        )
    if action == "reject" and reason not in REASONS:
        raise ValidationError({"reason": f"Give one of {', '.join(REASONS)}."})
    if action in ("tag", "untag"):
        tag = _clean_tag(tag)
    note = _clean_note(note)
    batch = uuid.uuid4()
    decisions: list[Decision] = []
    with transaction.atomic():
        found = set(Event.objects.filter(pk__in=ids).values_list("id", flat=True))
        missing = [i for i in ids if i not in found]
        if missing:
            raise ValidationError(
                {"events": f"No such events: {', '.join(map(str, missing[:10]))}."}
            )
        if action == "untag":
            ids = list(
                EventTag.objects.filter(event_id__in=ids, name=tag)
                .order_by("event_id")
                .values_list("event_id", flat=True)
            )
        for event_id in ids:
            if action == "accept":
                decisions.append(
                    _judge(
                        event_id=event_id,
                        action="accept",
                        user=user,
                        reason="",
                        note=note,
                        batch=batch,
                    )
                )
            elif action == "reject":
                decisions.append(
                    _judge(
                        event_id=event_id,
                        action="reject",
                        user=user,
                        reason=reason,
                        note=note,
                        batch=batch,
                    )
                )
            elif action == "tag":
                decisions.append(
                    decision_tag(event_id=event_id, user=user, tag=tag, note=note, batch=batch)
                )
            else:
                decisions.append(
                    decision_untag(event_id=event_id, user=user, tag=tag, note=note, batch=batch)
                )
    return batch, decisions
