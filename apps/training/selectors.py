"""Reads of the training app, with their joins done."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from apps.core.exceptions import ApplicationError
from apps.core.ids import parse_id
from apps.training.models import TrainingRun


def training_run_list(*, status: str = "") -> QuerySet[TrainingRun]:
    qs = TrainingRun.objects.select_related(
        "dataset_version", "dataset_version__recipe", "base_model", "created_by", "checkpoint"
    )
    return qs.filter(status=status) if status else qs


def training_run_get(run_id: int | str) -> TrainingRun:
    text = str(run_id).strip()
    pk = parse_id(text)
    row = training_run_list().filter(pk=pk).first() if pk is not None else None
    if row is None:
        raise ApplicationError(
            f"There is no training run {text!r}.", code="not_found", status_code=404
        )
    return row


def run_checkpoint(run: TrainingRun) -> Any:
    """The run's checkpoint, or None (the reverse one-to-one raises when there is none)."""
    try:
        return run.checkpoint
    except TrainingRun.checkpoint.RelatedObjectDoesNotExist:
        return None


def run_status(run: TrainingRun) -> dict[str, Any]:
    """What the run page polls every second: small, no loss curve."""
    checkpoint = run_checkpoint(run)
    last = run.loss_curve[-1] if run.loss_curve else {}
    return {
        "id": run.pk,
        "status": run.status,
        "progress": round(run.progress, 4),
        "step": run.step,
        "total_steps": run.total_steps,
        "loss": last.get("loss"),
        "tokens_per_second": last.get("tokens_per_second"),
        "points": len(run.loss_curve),
        "cancel_requested": run.cancel_requested,
        "error": run.error,
        "checkpoint": checkpoint.name if checkpoint else None,
        "heartbeat_at": run.heartbeat_at.isoformat() if run.heartbeat_at else None,
    }
