"""The training pages: the run list with the launch form, and a run's live page (progress bar,
loss curve, log), which polls `live` (JSON with the chart drawn on the server) every second."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.charts import line_chart
from apps.core.exceptions import ApplicationError
from apps.curation.roles import role_required
from apps.datasets.models import DatasetVersion
from apps.registry.models import BaseModel
from apps.registry.permissions import can_train
from apps.training import selectors, services
from apps.training.models import TrainingRun

# Launch form fields → trainer spec paths (blank fields keep the trainer's defaults).
SPEC_FIELDS = {
    "max_steps": ("max_steps", int),
    "epochs": ("epochs", float),
    "learning_rate": ("learning_rate", float),
    "batch_size": ("batch_size", int),
    "gradient_accumulation": ("gradient_accumulation", int),
    "max_length": ("max_length", int),
    "lora_r": ("lora.r", int),
    "lora_alpha": ("lora.alpha", int),
    "beta": ("beta", float),
    "seed": ("seed", int),
}


def _run_or_404(run_id: int) -> TrainingRun:
    try:
        return selectors.training_run_get(run_id)
    except ApplicationError as exc:
        raise Http404(exc.message) from exc


def loss_chart(run: TrainingRun) -> str:
    points = [(p["step"], p.get("loss")) for p in run.loss_curve if "loss" in p]
    return line_chart(
        [{"name": "train loss", "points": points}],
        x_label="step",
        y_label="loss",
        width=720,
        height=260,
        title=f"Loss of run {run.pk}",
    )


def _form_overrides(post: Any) -> tuple[dict[str, Any], dict[str, str]]:
    spec: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, (path, kind) in SPEC_FIELDS.items():
        raw = (post.get(name) or "").strip()
        if not raw:
            continue
        try:
            value = kind(raw)
        except ValueError:
            errors[f"spec.{path}"] = (
                f"{raw!r} is not a {'whole number' if kind is int else 'number'}"
            )
            continue
        *parents, leaf = path.split(".")
        target = spec
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return spec, errors


@role_required
@require_http_methods(["GET", "POST"])
def run_list(request: HttpRequest) -> HttpResponse:
    errors: dict[str, str] = {}
    if request.method == "POST":
        if not can_train(request.user):
            raise PermissionDenied(
                "Launching training needs an admin (or training.add_trainingrun)."
            )
        overrides, errors = _form_overrides(request.POST)
        launch = {
            "dataset_version": request.POST.get("dataset_version", ""),
            "method": request.POST.get("method", ""),
            "base_model": request.POST.get("base_model") or None,
            "overrides": overrides,
        }
        try:
            if errors:  # still name every other problem at once
                services.training_run_validate(**launch)
            else:
                run = services.training_run_create(**launch, user=request.user)
                messages.success(request, f"Run {run.pk} queued.")
                return redirect("training:run", run_id=run.pk)
        except ApplicationError as exc:
            errors = {**{k: " ".join(v) for k, v in exc.fields.items()}, **errors} or {
                "": exc.message
            }
    context = {
        "runs": selectors.training_run_list()[:100],
        "can_train": can_train(request.user),
        "versions": DatasetVersion.objects.select_related("recipe").filter(status="succeeded")[
            :200
        ],
        "base_models": BaseModel.objects.all(),
        "methods": TrainingRun.Method.choices,
        "errors": errors,
        "form": request.POST if request.method == "POST" else {},
    }
    return render(request, "training/run_list.html", context, status=400 if errors else 200)


@role_required
@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run_or_404(run_id)
    context = {
        "run": run,
        "live": selectors.run_status(run),
        "chart": loss_chart(run),
        "checkpoint": selectors.run_checkpoint(run),
        "can_train": can_train(request.user),
        "metrics": sorted(
            (k, v) for k, v in (run.metrics or {}).items() if k not in ("live", "eval_sets")
        ),
        "preference": selectors.preference_summary(run.metrics),
        "eval_sets": selectors.run_eval_sets(run),
    }
    return render(request, "training/run_detail.html", context)


@role_required
@require_GET
def run_live(request: HttpRequest, run_id: int) -> JsonResponse:
    """What the run page polls: the status, and the chart as server-drawn (escaped) SVG."""
    run = _run_or_404(run_id)
    return JsonResponse(
        {**selectors.run_status(run), "chart": str(loss_chart(run)), "log_tail": run.log_tail}
    )


@role_required
@require_POST
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    if not can_train(request.user):
        raise PermissionDenied("Cancelling training needs an admin (or training.add_trainingrun).")
    try:
        services.training_run_cancel(run=_run_or_404(run_id), user=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("training:run", run_id=run_id)
