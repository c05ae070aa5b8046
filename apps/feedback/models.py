"""The raw event log and the normalized rows derived from it.

`Event` is append-only: an accepted event is stored verbatim (after PII redaction, with the
rater replaced by a keyed hash) before anything else happens, and is never rewritten — the
database refuses UPDATE. Interactions, ratings and comparisons are derived from it by
`services.normalize` and can be rebuilt from it at any time (`manage.py normalize_feedback --rebuild`)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from apps.sources.models import Source

EVENT_TYPES = ["rating", "preference", "ranking", "edit"]


class Event(models.Model):
    class Type(models.TextChoices):
        RATING = "rating"
        PREFERENCE = "preference"
        RANKING = "ranking"
        EDIT = "edit"

    class Status(models.TextChoices):
        ACCEPTED = "accepted"
        QUARANTINED = "quarantined"

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="events")
    client_id = models.CharField(
        max_length=200, help_text="The client's event id, unique per source."
    )
    type = models.CharField(max_length=20, choices=Type.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACCEPTED)
    payload = models.JSONField(help_text="The event as received, after PII redaction.")
    rater_hash = models.CharField(max_length=64, blank=True, db_index=True)
    model = models.CharField(max_length=200, blank=True, db_index=True)
    checkpoint = models.CharField(max_length=200, blank=True, db_index=True)
    consent = models.BooleanField(default=True, help_text="May this feedback train models?")
    licence = models.CharField(max_length=100, blank=True)
    redactions = models.JSONField(
        default=dict, blank=True, help_text="PII kinds redacted, with counts."
    )
    ip_hash = models.CharField(
        max_length=64, blank=True, help_text="Keyed hash of the client address."
    )
    occurred_at = models.DateTimeField(
        null=True, blank=True, help_text="When the user gave it (client clock)."
    )
    received_at = models.DateTimeField(default=timezone.now)
    supersedes = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="superseded_by",
        help_text="The earlier event of the same source and rater that this one revises (a "
        "changed rating). One revision per event: datasets and leaderboards count only the "
        "latest, an event nobody supersedes.",
    )

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "client_id"], name="event_unique_client_id_per_source"
            ),
            models.CheckConstraint(
                condition=models.Q(type__in=EVENT_TYPES), name="event_type_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["accepted", "quarantined"]),
                name="event_status_valid",
            ),
        ]
        indexes = [models.Index(fields=["source", "received_at"], name="event_source_received")]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk} ({self.source_id}:{self.client_id})"


class Interaction(models.Model):
    """One assistant reply that a user judged: the single response of a rating or edit, or one
    of the responses of a preference or ranking."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="interactions")
    position = models.PositiveSmallIntegerField(
        help_text="Index in the event's responses (0 for one)."
    )
    model = models.CharField(max_length=200, blank=True, db_index=True)
    checkpoint = models.CharField(max_length=200, blank=True, db_index=True)
    prompt_hash = models.CharField(
        max_length=32, db_index=True, help_text="Hash of the normalized prompt."
    )
    edited = models.BooleanField(default=False, help_text="The user corrected this reply.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["event", "position"], name="interaction_unique_position"
            ),
        ]

    def __str__(self) -> str:
        return f"interaction {self.event_id}/{self.position} ({self.model})"


class Rating(models.Model):
    """A thumbs (±1) and/or a 1-10 score on one interaction."""

    event = models.OneToOneField(Event, on_delete=models.CASCADE, related_name="rating_row")
    interaction = models.OneToOneField(Interaction, on_delete=models.CASCADE)
    source = models.ForeignKey(Source, on_delete=models.CASCADE)
    model = models.CharField(max_length=200, blank=True)
    checkpoint = models.CharField(max_length=200, blank=True)
    value = models.SmallIntegerField(null=True, blank=True)
    score = models.SmallIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=100, blank=True)
    rater_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(value__in=[1, -1]) | models.Q(value__isnull=True),
                name="rating_value_thumb",
            ),
            models.CheckConstraint(
                condition=models.Q(score__gte=1, score__lte=10) | models.Q(score__isnull=True),
                name="rating_score_range",
            ),
        ]
        indexes = [
            models.Index(fields=["model", "checkpoint", "created_at"], name="rating_model_time")
        ]

    def __str__(self) -> str:
        return f"rating {self.value or self.score} on {self.model}"


class Comparison(models.Model):
    """One pairwise outcome between two interactions of the same event: a preference, or one
    pair of an expanded ranking. `a` is always the lower position."""

    class Outcome(models.TextChoices):
        A = "a", "a wins"
        B = "b", "b wins"
        TIE = "tie"
        BOTH_BAD = "both_bad", "both bad"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="comparisons")
    interaction_a = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="+")
    interaction_b = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(Source, on_delete=models.CASCADE)
    model_a = models.CharField(max_length=200, blank=True)
    model_b = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    rater_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["interaction_a", "interaction_b"], name="comparison_unique_pair"
            ),
            models.CheckConstraint(
                condition=models.Q(outcome__in=["a", "b", "tie", "both_bad"]),
                name="comparison_outcome_valid",
            ),
        ]
        indexes = [models.Index(fields=["model_a", "model_b"], name="comparison_models")]

    def __str__(self) -> str:
        return f"{self.model_a} vs {self.model_b}: {self.outcome}"


class RaterTombstone(models.Model):
    """A rater who asked to be forgotten (`manage.py forget_rater`). Their events stay in the
    append-only log but count as tombstoned: dataset builds and leaderboards leave out every event
    whose `rater_hash` has a tombstone, and dataset versions built before it that contain such
    events are flagged."""

    rater_hash = models.CharField(max_length=64, unique=True)
    events = models.PositiveIntegerField(default=0, help_text="Events of the rater when forgotten.")
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"forgotten rater {self.rater_hash[:12]}…"
