"""The checkpoint pages: the list (with every alias, its history and a rollback button) and a
checkpoint's page (lineage run → dataset version → recipe, files with sha256, metrics, the
aliases that point at it; publish, alias and retire forms for those allowed)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps.core.exceptions import ApplicationError
from apps.curation.roles import role_required
from apps.registry import selectors, services
from apps.registry.models import Checkpoint
from apps.registry.permissions import can_publish
from trainer.preference import summary_rows as preference_summary


def _checkpoint_or_404(ref: str) -> Checkpoint:
    try:
        return selectors.checkpoint_get(ref)
    except ApplicationError as exc:
        raise Http404(exc.message) from exc


def _need_publisher(request: HttpRequest) -> None:
    if not can_publish(request.user):
        raise PermissionDenied(
            "Publishing and moving aliases needs an admin (or registry.change_alias)."
        )


def _say(request: HttpRequest, exc: ApplicationError) -> None:
    details = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.fields.items())
    messages.error(request, f"{exc.message} {details}".strip() if details else exc.message)


@role_required
@require_GET
def checkpoint_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    if status not in Checkpoint.Status.values:
        status = ""
    aliases = [
        {
            "alias": alias,
            "rollback_to": services.alias_rollback_target(alias),
            "moves": list(alias.moves.all())[:5],
        }
        for alias in selectors.alias_list()
    ]
    context = {
        "checkpoints": selectors.checkpoint_list(status=status)[:200],
        "aliases": aliases,
        "status": status,
        "statuses": Checkpoint.Status.values,
        "can_publish": can_publish(request.user),
        "base_models": selectors.base_model_list(),
    }
    return render(request, "registry/checkpoint_list.html", context)


@role_required
@require_GET
def checkpoint_detail(request: HttpRequest, ref: str) -> HttpResponse:
    checkpoint = _checkpoint_or_404(ref)
    pointing = [a for a in selectors.alias_list() if a.checkpoint_id == checkpoint.pk]
    context = {
        "checkpoint": checkpoint,
        "lineage": selectors.lineage(checkpoint),
        "run": checkpoint.run,
        "version": checkpoint.dataset_version,
        "recipe": checkpoint.dataset_version.recipe if checkpoint.dataset_version else None,
        "aliases": [
            {
                "alias": a,
                "rollback_to": services.alias_rollback_target(a),
                "moves": list(a.moves.all()),
            }
            for a in pointing
        ],
        "files": sorted(checkpoint.sha256.items()),
        "metrics": sorted((checkpoint.metrics or {}).items()),
        "artifact_path": selectors.artifact_path(checkpoint),
        "can_publish": can_publish(request.user),
        "base_weights": selectors.base_weights(checkpoint),
        "preference": preference_summary(checkpoint.metrics),
    }
    return render(request, "registry/checkpoint_detail.html", context)


@role_required
@require_POST
def base_model_serve(request: HttpRequest, ref: str) -> HttpResponse:
    """Serve a base model as it is (its base checkpoint, published; optionally an alias)."""
    _need_publisher(request)
    base = selectors.base_model_find(ref)
    if base is None:
        raise Http404(f"There is no base model {ref!r}.")
    try:
        checkpoint = services.base_model_serve(
            base_model=base, alias=request.POST.get("alias", "").strip(), user=request.user
        )
    except ApplicationError as exc:
        _say(request, exc)
        return redirect("registry:list")
    messages.success(request, f"{base.name} is served as {checkpoint.name}.")
    return redirect("registry:checkpoint", ref=checkpoint.name)


@role_required
@require_POST
def checkpoint_publish(request: HttpRequest, ref: str) -> HttpResponse:
    _need_publisher(request)
    checkpoint = _checkpoint_or_404(ref)
    alias = request.POST.get("alias", "").strip()
    try:
        services.checkpoint_publish(
            checkpoint=checkpoint,
            alias=alias,
            user=request.user,
            reason=request.POST.get("reason", "").strip(),
        )
    except ApplicationError as exc:
        _say(request, exc)
    else:
        messages.success(
            request, f"Published {checkpoint.name}" + (f" as {alias}." if alias else ".")
        )
    return redirect("registry:checkpoint", ref=checkpoint.name)


@role_required
@require_POST
def checkpoint_retire(request: HttpRequest, ref: str) -> HttpResponse:
    _need_publisher(request)
    checkpoint = _checkpoint_or_404(ref)
    try:
        services.checkpoint_retire(checkpoint=checkpoint, user=request.user)
    except ApplicationError as exc:
        _say(request, exc)
    else:
        messages.success(request, f"Retired {checkpoint.name}.")
    return redirect("registry:checkpoint", ref=checkpoint.name)


@role_required
@require_POST
def alias_set(request: HttpRequest, ref: str) -> HttpResponse:
    _need_publisher(request)
    checkpoint = _checkpoint_or_404(ref)
    name = request.POST.get("alias", "").strip()
    try:
        services.alias_set(
            name=name,
            checkpoint=checkpoint,
            user=request.user,
            reason=request.POST.get("reason", "").strip(),
        )
    except ApplicationError as exc:
        _say(request, exc)
    else:
        messages.success(request, f"{name} → {checkpoint.name}.")
    return redirect("registry:checkpoint", ref=checkpoint.name)


@role_required
@require_POST
def alias_rollback(request: HttpRequest, name: str) -> HttpResponse:
    _need_publisher(request)
    try:
        alias = services.alias_rollback(name=name, user=request.user)
    except ApplicationError as exc:
        if exc.status_code == 404:
            raise Http404(exc.message) from exc
        _say(request, exc)
    else:
        messages.success(request, f"Rolled {name} back to {alias.checkpoint.name}.")
    return redirect(
        request.POST.get("next")
        if request.POST.get("next", "").startswith("/checkpoints/")
        else "registry:list"
    )
