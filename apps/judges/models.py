"""Judges, their audits against people, and offline gates.

- `Judge`: a named, versioned judge of one of three kinds (a reward-model checkpoint, an LLM
  through an OpenAI-compatible endpoint, a rule) and its settings. Registering the same name
  again with other settings makes the next version; earlier versions stay, so an audit or a
  gate always names exactly what judged.
- `JudgeAudit`: one audit of a judge on human-labelled pairs: agreement, kappa, flips, length
  bias and the coverage-precision curve (`results`, the `audit_judge --json` object).
- `GateRun`: one offline gate: a candidate checkpoint against an alias's checkpoint on the held-out
  prompts of a dataset version, judged by a judge; win rate with its interval, the verdict and
  the examples the candidate lost most clearly. Recorded on the checkpoint (its gate runs) and
  consulted by publishing when `JUDGES_REQUIRE_GATE` is on.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Judge(models.Model):
    class Kind(models.TextChoices):
        REWARD_MODEL = "reward_model", "reward model"
        LLM = "llm", "LLM judge (OpenAI-compatible)"
        RULE = "rule", "rule"

    name = models.SlugField(max_length=100)
    version = models.PositiveIntegerField(default=1)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    checkpoint = models.ForeignKey(
        "registry.Checkpoint",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="judges",
        help_text="The reward model (kind reward_model only).",
    )
    config = models.JSONField(default=dict, blank=True, help_text="The kind's settings.")
    description = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="judge_name_version_unique"),
            models.CheckConstraint(
                condition=Q(kind__in=["reward_model", "llm", "rule"]), name="judge_kind_valid"
            ),
            models.CheckConstraint(
                condition=~Q(kind="reward_model") | Q(checkpoint__isnull=False),
                name="judge_reward_model_has_checkpoint",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


class JudgeAudit(models.Model):
    judge = models.ForeignKey(Judge, on_delete=models.CASCADE, related_name="audits")
    source = models.CharField(max_length=500, help_text="What the pairs were, e.g. dataset v3.")
    pairs = models.PositiveIntegerField(default=0)
    agreement = models.FloatField(null=True, blank=True)
    kappa = models.FloatField(null=True, blank=True)
    results = models.JSONField(default=dict, blank=True)
    seconds = models.FloatField(default=0.0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"audit {self.pk} of {self.judge}"


class GateRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        PASSED = "passed"
        FAILED = "failed"
        ERROR = "error"

    candidate = models.ForeignKey(
        "registry.Checkpoint", on_delete=models.CASCADE, related_name="gate_runs"
    )
    against = models.ForeignKey("registry.Checkpoint", on_delete=models.PROTECT, related_name="+")
    against_alias = models.CharField(max_length=100, blank=True)
    judge = models.ForeignKey(Judge, on_delete=models.PROTECT, related_name="gate_runs")
    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion", on_delete=models.PROTECT, related_name="gate_runs"
    )
    prompts = models.PositiveIntegerField(default=0)
    line = models.FloatField(default=0.5, help_text="Pass when the interval's lower end clears it.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    win_rate = models.FloatField(null=True, blank=True)
    win_rate_low = models.FloatField(null=True, blank=True)
    win_rate_high = models.FloatField(null=True, blank=True)
    results = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    seconds = models.FloatField(default=0.0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "passed", "failed", "error"]),
                name="gate_run_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"gate {self.pk}: {self.candidate_id} vs {self.against_id} ({self.status})"

    @property
    def passed(self) -> bool:
        return self.status == self.Status.PASSED
