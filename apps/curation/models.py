"""Curators' decisions on events, beside the raw log (which they never change).

- `Decision`: one recorded act of a curator on one event: accept, reject with a reason, tag,
  untag, or edit to gold (the curator's better reply). Who and when are kept; undoing a decision
  stamps `undone_at`/`undone_by` on it instead of deleting it. A bulk decision is many rows with
  one `batch`.
- `EventTag`: the tags an event carries now (derived from the tag/untag decisions that are not
  undone), indexed for the inbox's tag filter.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.feedback.models import Event


class Decision(models.Model):
    class Action(models.TextChoices):
        ACCEPT = "accept"
        REJECT = "reject"
        TAG = "tag"
        UNTAG = "untag"
        GOLD = "gold", "edit to gold"

    class Reason(models.TextChoices):
        SPAM = "spam"
        LOW_QUALITY = "low_quality", "low quality"
        UNSAFE = "unsafe"
        PII = "pii", "contains PII"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="decisions")
    action = models.CharField(max_length=10, choices=Action.choices)
    reason = models.CharField(max_length=20, choices=Reason.choices, blank=True)
    tag = models.CharField(max_length=64, blank=True, help_text="For tag/untag.")
    gold_response = models.TextField(blank=True, help_text="For gold: the curator's better reply.")
    position = models.PositiveSmallIntegerField(
        default=0, help_text="For gold: which response of the event it improves (0 for one)."
    )
    note = models.CharField(max_length=500, blank=True)
    batch = models.UUIDField(null=True, blank=True, db_index=True, help_text="One bulk decision.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verdict = models.ForeignKey(
        "quality.Verdict",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="For accept/reject: the verdict this decision made current.",
    )
    previous_verdict = models.ForeignKey(
        "quality.Verdict",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="For accept/reject: the verdict that was current before (undo brings it back).",
    )

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(action__in=["accept", "reject", "tag", "untag", "gold"]),
                name="decision_action_valid",
            ),
            models.CheckConstraint(
                condition=~Q(action="reject") | ~Q(reason=""), name="decision_reject_has_reason"
            ),
            models.CheckConstraint(
                condition=~Q(action="gold") | ~Q(gold_response=""), name="decision_gold_has_text"
            ),
        ]
        indexes = [
            models.Index(fields=["event", "action"], name="decision_event_action"),
            models.Index(fields=["action", "undone_at"], name="decision_action_live"),
        ]

    def __str__(self) -> str:
        return f"{self.action} on event {self.event_id}"


class EventTag(models.Model):
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="curator_tags")
    name = models.CharField(max_length=64)
    decision = models.ForeignKey(Decision, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "name"], name="event_tag_unique"),
        ]
        indexes = [models.Index(fields=["name", "event"], name="event_tag_name")]

    def __str__(self) -> str:
        return f"{self.name} on {self.event_id}"


class EventSearch(models.Model):
    """The full-text document of one event (PostgreSQL: `to_tsvector('english', payload)`, with
    a GIN index), stored beside the append-only log so a search never recomputes it per row.
    Filled by `search.search_index_catch_up` (the `curation.index_search` task, and inline for a
    small tail at search time). Unused on SQLite, whose fallback searches the payload text."""

    event = models.OneToOneField(
        Event, primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    document = SearchVectorField(null=True)

    def __str__(self) -> str:
        return f"search document of {self.event_id}"
