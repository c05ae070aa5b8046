"""Reads of the training app, with their joins done."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from apps.core.exceptions import ApplicationError
from apps.core.ids import parse_id
from apps.training.models import TrainingRun
from trainer.preference import summary_rows as preference_summary

__all__ = [
    "preference_summary",
    "run_eval_sets",
    "run_phase",
    "run_status",
    "training_run_get",
    "training_run_list",
]


def run_eval_sets(run: TrainingRun) -> list[dict[str, Any]]:
    """The other eval sets a finished run's adapter was scored on (`train --evaluate`), by
    name: the file, when, its rows and its "base → trained" rows."""
    sets = (run.metrics or {}).get("eval_sets") or {}
    out = []
    for name, entry in sorted(sets.items()):
        metrics = entry.get("metrics") or {}
        out.append(
            {
                "name": name,
                "file": entry.get("file", ""),
                "sha256": entry.get("sha256", ""),
                "evaluated_at": entry.get("evaluated_at", ""),
                "rows": int(metrics.get("eval_rows") or metrics.get("eval_pairs") or 0),
                "preference": preference_summary(metrics),
                "loss": metrics.get("eval_loss"),
            }
        )
    return out


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


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def run_phase(run: TrainingRun) -> dict[str, Any]:
    """What the run is doing now, in words and numbers: loading, scoring the reference (DPO:
    sequences scored, ETA), training (step, elapsed, ETA), saving, evaluating (sequences
    scored, ETA), or its final status and duration."""
    live = (run.metrics or {}).get("live") or {} if run.status == TrainingRun.Status.RUNNING else {}
    phase = live.get("phase") or run.status
    end = run.finished_at or timezone.now()
    elapsed = (end - run.started_at).total_seconds() if run.started_at else None
    eta = live.get("eta_seconds")
    info: dict[str, Any] = {
        "phase": phase,
        "elapsed_seconds": round(elapsed, 1) if elapsed is not None else None,
        "eta_seconds": eta,
        "eval_done": live.get("eval_done"),
        "eval_total": live.get("eval_total"),
        "fraction": round(run.progress, 4),
    }
    if phase == "loading" or (phase == "training" and not run.total_steps):
        text = "loading the model and the data"
    elif phase == "reference" and live.get("eval_total"):
        done, total = live["eval_done"], live["eval_total"]
        info["fraction"] = round(done / total, 4)
        text = f"scoring the base model once before training: {done}/{total} sequences"
    elif phase in ("training", "running"):
        text = f"training: step {run.step}/{run.total_steps}"
    elif phase == "evaluating" and live.get("eval_total"):
        done, total = live["eval_done"], live["eval_total"]
        info["fraction"] = round(done / total, 4)
        text = f"evaluating: {done}/{total} sequences scored"
    elif phase in ("evaluating", "saving"):
        text = f"{phase}: the adapter is saved" if phase == "evaluating" else "saving the adapter"
    else:
        text = phase
    if elapsed is not None:
        text += f" · {_minutes(elapsed)} {'in all' if run.finished_at else 'elapsed'}"
    if eta is not None and run.status == TrainingRun.Status.RUNNING:
        text += f" · about {_minutes(eta)} left"
    info["text"] = text
    return info


def run_status(run: TrainingRun) -> dict[str, Any]:
    """What the run page polls every second: small, no loss curve."""
    checkpoint = run_checkpoint(run)
    last = run.loss_curve[-1] if run.loss_curve else {}
    phase = run_phase(run)
    return {
        "id": run.pk,
        "status": run.status,
        "phase": phase,
        "progress": phase["fraction"],
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
