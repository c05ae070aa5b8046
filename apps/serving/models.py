"""The serving gateway's records: every answer it gave, and the A/B experiments that split traffic.

- `ServedAnswer`: one answer of `POST /v1/chat/completions`, keyed by the interaction id that
  the answer carries. Feedback that quotes the id is attached to exactly this checkpoint.
- `Experiment` and `Arm`: traffic split between two or more checkpoints or aliases, assigned
  deterministically by rater. An arm that names an alias is resolved to the alias's checkpoint
  when the experiment starts (`Arm.resolved`), so that moving the alias later (a promote) does
  not change what the arm served or how its results are counted.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Experiment(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        RUNNING = "running"
        STOPPED = "stopped"
        DECIDED = "decided"

    name = models.SlugField(max_length=100, unique=True)
    description = models.CharField(max_length=500, blank=True)
    alias = models.ForeignKey(
        "registry.Alias",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="experiments",
        help_text="The alias a verdict may promote; while running, requests for it are split.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    confidence = models.FloatField(default=0.95, help_text="For intervals and the verdict.")
    power = models.FloatField(default=0.8, help_text="For the number of events still needed.")
    min_events = models.PositiveIntegerField(default=30, help_text="Per arm, before any verdict.")
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    decided_arm = models.ForeignKey(
        "serving.Arm", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    promote_move = models.ForeignKey(
        "registry.AliasMove",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The alias move the promote made (a rollback undoes it).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["draft", "running", "stopped", "decided"]),
                name="experiment_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(confidence__gt=0.5, confidence__lt=1),
                name="experiment_confidence_range",
            ),
            models.CheckConstraint(
                condition=Q(power__gt=0, power__lt=1), name="experiment_power_range"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Arm(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="arms")
    name = models.SlugField(max_length=100, help_text="Unique within the experiment.")
    checkpoint = models.ForeignKey(
        "registry.Checkpoint", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    alias = models.ForeignKey(
        "registry.Alias", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved = models.ForeignKey(
        "registry.Checkpoint",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The checkpoint this arm serves: fixed when the experiment starts.",
    )
    weight = models.PositiveIntegerField(
        default=1, help_text="Share of traffic, relative to the others."
    )
    is_control = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="arm_unique_name"),
            models.UniqueConstraint(
                fields=["experiment"], condition=Q(is_control=True), name="arm_one_control"
            ),
            models.CheckConstraint(
                condition=Q(checkpoint__isnull=False, alias__isnull=True)
                | Q(checkpoint__isnull=True, alias__isnull=False),
                name="arm_checkpoint_or_alias",
            ),
            models.CheckConstraint(condition=Q(weight__gte=1), name="arm_weight_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}/{self.name}"

    def target(self):  # -> Checkpoint | None
        """The checkpoint the arm serves: fixed at start, else where it points now."""
        if self.resolved_id:
            return self.resolved
        return self.checkpoint if self.checkpoint_id else self.alias.checkpoint


class ServedAnswer(models.Model):
    interaction_id = models.CharField(max_length=64, unique=True, help_text="chatcmpl-<uuid>.")
    trace_id = models.CharField(
        max_length=64,
        blank=True,
        db_index=True,
        help_text="The Langfuse/OpenTelemetry trace the answer belongs to: the request's "
        "`traceparent` or `X-Sinkhole-Trace-Id`, else the interaction id's 32 hex digits.",
    )
    source = models.ForeignKey(
        "sources.Source", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    checkpoint = models.ForeignKey(
        "registry.Checkpoint", on_delete=models.PROTECT, related_name="+"
    )
    requested_model = models.CharField(max_length=200, help_text="The request's `model`.")
    alias = models.CharField(max_length=100, blank=True, help_text="The alias it went through.")
    experiment = models.ForeignKey(
        Experiment, null=True, blank=True, on_delete=models.SET_NULL, related_name="answers"
    )
    arm = models.ForeignKey(
        Arm, null=True, blank=True, on_delete=models.SET_NULL, related_name="answers"
    )
    rater_hash = models.CharField(max_length=64, blank=True, db_index=True)
    backend = models.CharField(max_length=20, help_text="builtin or upstream.")
    stream = models.BooleanField(default=False)
    messages = models.JSONField(default=list, help_text="The prompt (after PII redaction).")
    response = models.TextField(blank=True, help_text="The answer (after PII redaction).")
    finish_reason = models.CharField(max_length=20, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.interaction_id} ({self.checkpoint_id})"
