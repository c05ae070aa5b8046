"""Training runs: one fine-tune of a base model on a dataset version, from queued to done.

The Celery task on the `training` queue drives a run through `trainer` (plain Python) and keeps
this row current: status, progress, the loss curve, metrics, the tail of the log, timings, the
worker host and a heartbeat that the reaper watches."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"]


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Method(models.TextChoices):
        SFT = "sft", "LoRA SFT"
        DPO = "dpo", "LoRA DPO"
        KTO = "kto", "LoRA KTO"
        RM = "rm", "LoRA reward model"

    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion", on_delete=models.PROTECT, related_name="training_runs"
    )
    base_model = models.ForeignKey(
        "registry.BaseModel", on_delete=models.PROTECT, related_name="training_runs"
    )
    method = models.CharField(max_length=3, choices=Method.choices)
    spec = models.JSONField(help_text="The trainer job spec, validated before queueing.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    progress = models.FloatField(default=0.0, help_text="0..1")
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    loss_curve = models.JSONField(default=list, blank=True, help_text='[{"step", "loss", ...}]')
    metrics = models.JSONField(default=dict, blank=True)
    log_tail = models.TextField(blank=True)
    error = models.TextField(blank=True)
    output_dir = models.CharField(max_length=500, blank=True)
    worker_host = models.CharField(max_length=200, blank=True)
    task_id = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=STATUSES), name="training_run_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(method__in=["sft", "dpo", "kto", "rm"]),
                name="training_run_method_valid",
            ),
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="training_run_live")]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.method}, {self.status})"
