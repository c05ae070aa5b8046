"""The datasets pages (server-rendered, Django login): recipes and the form to make one (the
inbox's filters), a version's page with a live progress bar, its stats card, downloads and
compare. Reading needs any role; making recipes, uploading eval sets and building need a curator."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps.core.charts import bar_chart
from apps.core.ids import parse_id
from apps.curation.filters import KEYS as filter_keys
from apps.curation.roles import role_required
from apps.datasets import selectors
from apps.datasets.apis import FILE_NAMES
from apps.datasets.mining import RULES
from apps.datasets.models import KINDS, DatasetVersion, EvalSet
from apps.datasets.services import dataset_version_create, eval_set_create, recipe_create
from apps.feedback.models import EVENT_TYPES
from apps.sources.models import Source

FILTER_KEYS = filter_keys  # the inbox's, so its links prefill the form
READ = "datasets.view_datasetversion"


def _can(request: HttpRequest, perm: str) -> bool:
    return request.user.has_perm(perm)


@require_GET
@role_required
@permission_required(READ, raise_exception=True)
def index(request: HttpRequest) -> HttpResponse:
    """Recipes, recent versions and the new-recipe form; the form takes its filters from the
    query string, so the inbox can link here with its current filter."""
    prefill = {k: request.GET.get(k, "") for k in FILTER_KEYS}
    return render(
        request,
        "datasets/index.html",
        {
            "recipes": selectors.recipes().prefetch_related("versions"),
            "versions": selectors.versions()[:20],
            "eval_sets": selectors.eval_sets(),
            "sources": Source.objects.order_by("name").values_list("name", flat=True),
            "kinds": KINDS,
            "event_types": EVENT_TYPES,
            "rules": RULES,
            "prefill": prefill,
            "form": request.session.pop("datasets_form", None) or {},
            "can_write": _can(request, "datasets.add_recipe"),
            "can_upload": _can(request, "datasets.add_evalset"),
        },
    )


def _float(
    value: str, field: str, errors: dict[str, str], default: float | None = None
) -> float | None:
    if value.strip() == "":
        return default
    try:
        return float(value)
    except ValueError:
        errors[field] = "Give a number."
        return default


@require_POST
@role_required
@permission_required("datasets.add_recipe", raise_exception=True)
def recipe_new(request: HttpRequest) -> HttpResponse:
    post = request.POST
    errors: dict[str, str] = {}
    options: dict[str, Any] = {
        "filters": {k: post[k].strip() for k in FILTER_KEYS if post.get(k, "").strip()},
        "min_trust": _float(post.get("min_trust", ""), "min_trust", errors, 0.0),
        "curated_only": post.get("curated_only") == "on",
        "pair_rules": {rule: post.get(f"rule_{rule}") == "on" for rule in RULES},
        "dedup_exact": post.get("dedup_exact") == "on",
        "dedup_near": post.get("dedup_near") == "on",
        "near_threshold": _float(post.get("near_threshold", ""), "near_threshold", errors, 0.9),
        "test_fraction": _float(post.get("test_fraction", ""), "test_fraction", errors, 0.1),
        "kto_desirable_weight": _float(
            post.get("kto_desirable_weight", ""), "kto_desirable_weight", errors
        ),
        "kto_undesirable_weight": _float(
            post.get("kto_undesirable_weight", ""), "kto_undesirable_weight", errors
        ),
    }
    for key in ("max_rows", "seed"):
        raw = post.get(key, "").strip()
        if raw:
            number = parse_id(raw)
            if number is None:
                errors[key] = "Give a whole number."
            else:
                options[key] = number
    if post.get("decontaminate"):
        options["decontaminate"] = EvalSet.objects.filter(name=post["decontaminate"]).first()
    if not errors:
        try:
            recipe = recipe_create(
                name=post.get("name", "").strip(),
                kind=post.get("kind", ""),
                user=request.user,
                **options,
            )
        except ValidationError as exc:
            errors = {k: " ".join(v) for k, v in exc.message_dict.items()}
        else:
            messages.success(request, f"Recipe {recipe.name} saved.")
            return redirect("datasets:recipe", recipe_id=recipe.pk)
    for field, message in errors.items():
        messages.error(request, f"{field}: {message}")
    request.session["datasets_form"] = {k: v for k, v in post.items() if k != "csrfmiddlewaretoken"}
    return redirect("datasets:index")


@require_POST
@role_required
@permission_required("datasets.add_evalset", raise_exception=True)
def eval_set_new(request: HttpRequest) -> HttpResponse:
    upload = request.FILES.get("file")
    name = request.POST.get("name", "").strip()
    if upload is None:
        messages.error(request, "file: attach a JSONL file of prompts.")
        return redirect("datasets:index")
    try:
        eval_set = eval_set_create(
            name=name, content=upload.read(), file_name=upload.name, user=request.user
        )
    except ValidationError as exc:
        for field, msgs in exc.message_dict.items():
            messages.error(request, f"{field}: {' '.join(msgs)}")
    else:
        messages.success(
            request,
            f"Eval set {eval_set.name}: {eval_set.prompts} prompts kept out of recipes that name it.",
        )
    return redirect("datasets:index")


@require_GET
@role_required
@permission_required(READ, raise_exception=True)
def recipe(request: HttpRequest, recipe_id: int) -> HttpResponse:
    found = selectors.recipe_get(recipe_id=recipe_id)
    if found is None:
        raise Http404("No such recipe.")
    return render(
        request,
        "datasets/recipe.html",
        {
            "recipe": found,
            "versions": selectors.versions(recipe=found)[:100],
            "can_build": _can(request, "datasets.add_datasetversion"),
        },
    )


@require_POST
@role_required
@permission_required("datasets.add_datasetversion", raise_exception=True)
def recipe_build(request: HttpRequest, recipe_id: int) -> HttpResponse:
    found = selectors.recipe_get(recipe_id=recipe_id)
    if found is None:
        raise Http404("No such recipe.")
    version = dataset_version_create(recipe=found, user=request.user)
    return redirect("datasets:version", version_id=version.pk)


def _version_or_404(version_id: int) -> DatasetVersion:
    version = selectors.version_get(version_id=version_id)
    if version is None:
        raise Http404("No such dataset version.")
    return version


def _charts(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """The stats card's charts: per source, model and label, and the two length histograms."""
    train, test = stats.get("train") or {}, stats.get("test") or {}
    charts = []
    for key, title in (
        ("source", "Rows per source"),
        ("model", "Rows per model"),
        ("label", "Rows per label"),
    ):
        merged: dict[str, int] = {}
        for side in (train, test):
            for name, n in (side.get(key) or {}).items():
                merged[name] = merged.get(name, 0) + n
        bars = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:12]
        charts.append(
            {"title": title, "svg": bar_chart(bars, title=title, height=200), "table": bars}
        )
    for key, title in (
        ("prompt_chars", "Prompt length (characters)"),
        ("completion_chars", "Reply length (characters)"),
    ):
        bins = [
            (
                b["label"],
                b["count"]
                + next((t["count"] for t in test.get(key, []) if t["label"] == b["label"]), 0),
            )
            for b in train.get(key, [])
        ]
        charts.append(
            {"title": title, "svg": bar_chart(bins, title=title, height=200), "table": bins}
        )
    return charts


@require_GET
@role_required
@permission_required(READ, raise_exception=True)
def version(request: HttpRequest, version_id: int) -> HttpResponse:
    found = _version_or_404(version_id)
    done = found.status == DatasetVersion.Status.SUCCEEDED
    return render(
        request,
        "datasets/version.html",
        {
            "version": found,
            "charts": _charts(found.stats) if done else [],
            "downloads": [
                (name, f"/api/v1/dataset-versions/{found.pk}/files/{name}") for name in FILE_NAMES
            ]
            if done
            else [],
            "others": selectors.versions()
            .filter(status=DatasetVersion.Status.SUCCEEDED)
            .exclude(pk=found.pk)[:50],
            "dropped": sorted((found.stats.get("dropped") or {}).items()),
            "preview": selectors.version_rows(found, "train", limit=5) if done else [],
        },
    )


@require_GET
@role_required
@permission_required(READ, raise_exception=True)
def version_progress(request: HttpRequest, version_id: int) -> JsonResponse:
    found = _version_or_404(version_id)
    return JsonResponse(
        {
            "status": found.status,
            "progress": found.progress,
            "message": found.message,
            "error": found.error,
        }
    )


@require_GET
@role_required
@permission_required(READ, raise_exception=True)
def version_compare(request: HttpRequest, version_id: int) -> HttpResponse:
    found = _version_or_404(version_id)
    other_id = parse_id(request.GET.get("with", ""))
    if other_id is None:
        messages.error(request, "Pick a version to compare with.")
        return redirect("datasets:version", version_id=found.pk)
    other = _version_or_404(other_id)
    if (
        DatasetVersion.Status.SUCCEEDED != found.status
        or other.status != DatasetVersion.Status.SUCCEEDED
    ):
        messages.error(request, "Both versions must have been built.")
        return redirect("datasets:version", version_id=found.pk)
    return render(
        request,
        "datasets/compare.html",
        {"a": found, "b": other, "diff": selectors.versions_compare(a=found, b=other)},
    )
