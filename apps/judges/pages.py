"""The judges pages (server-rendered, Django login), under /judges/: the list of judges and
gates, a judge's page (its versions, its newest audit with the coverage-precision chart, older
audits, an audit form), the gate form (the checkpoint page's "Run the offline gate" button posts
here) and a gate's page (verdict, win rate, the clearest losses, and the live experiment beside
the prediction)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.charts import line_chart
from apps.core.exceptions import ApplicationError
from apps.curation.roles import role_required
from apps.judges import pairs as pair_sources
from apps.judges import selectors, services
from apps.judges.apis import enqueue_gate
from apps.registry.permissions import can_publish
from apps.registry.selectors import checkpoint_get


def _or_404(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except ApplicationError as exc:
        raise Http404(exc.message) from exc


def _say(request: HttpRequest, exc: ApplicationError) -> None:
    details = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.fields.items())
    messages.error(request, f"{exc.message} {details}".strip() if details else exc.message)


def _need_publisher(request: HttpRequest) -> None:
    if not can_publish(request.user):
        raise PermissionDenied("Auditing and gating need an admin (or registry.change_alias).")


def curve_chart(results: dict[str, Any]) -> Any:
    """Precision (and its Wilson lower bound) against coverage; people's agreement with each
    other as a flat reference line where the pairs hold several votes."""
    curve = results.get("curve") or []
    series = [
        {"name": "precision", "points": [(p["coverage"], p["precision"]) for p in curve]},
        {"name": "lower bound", "points": [(p["coverage"], p["precision_low"]) for p in curve]},
    ]
    human = results.get("human_agreement")
    if human and curve:
        level = human["agreement"]
        series.append(
            {"name": "people vs people", "points": [(curve[0]["coverage"], level), (1.0, level)]}
        )
    return line_chart(
        series,
        x_label="coverage (share of pairs certified)",
        y_label="precision",
        y_min=0.0,
        y_max=1.0,
        title="Coverage and precision",
    )


@role_required
@require_GET
def judge_list(request: HttpRequest) -> HttpResponse:
    context = {
        "judges": selectors.judge_latest_list(),
        "gates": selectors.gate_run_list()[:50],
        "can_publish": can_publish(request.user),
    }
    return render(request, "judges/judge_list.html", context)


@role_required
@require_GET
def judge_detail(request: HttpRequest, ref: str) -> HttpResponse:
    judge = _or_404(selectors.judge_get, ref)
    audits = list(selectors.audit_list(judge)[:20])
    latest = audits[0] if audits else None
    context = {
        "judge": judge,
        "versions": selectors.judge_list().filter(name=judge.name),
        "audits": audits,
        "latest": latest,
        "chart": curve_chart(latest.results) if latest else None,
        "can_publish": can_publish(request.user),
    }
    return render(request, "judges/judge_detail.html", context)


@role_required
@require_POST
def judge_audit(request: HttpRequest, ref: str) -> HttpResponse:
    _need_publisher(request)
    judge = _or_404(selectors.judge_get, ref)
    try:
        if request.POST.get("dataset_version"):
            version = selectors.dataset_version_get(request.POST["dataset_version"])
            labelled = pair_sources.dataset_pairs(version)
            source = f"dataset v{version.pk} (test split)"
        else:
            labelled = pair_sources.event_pairs()
            source = "preference events"
        services.judge_audit(judge=judge, pairs=labelled, source=source)
        messages.success(request, f"Audited {judge.label} on {len(labelled)} pairs.")
    except pair_sources.PairsError as exc:
        messages.error(request, str(exc))
    except ApplicationError as exc:
        _say(request, exc)
    return redirect("judges:judge", ref=judge.label)


@role_required
@require_http_methods(["GET", "POST"])
def gate_new(request: HttpRequest) -> HttpResponse:
    """GET: the form (prefilled from ?candidate=); POST: queue the gate, go to its page."""
    form = request.POST if request.method == "POST" else request.GET
    if request.method == "POST":
        _need_publisher(request)
        try:
            run = services.gate_run_create(
                candidate=checkpoint_get(form.get("candidate", "")),
                against_alias=form.get("against", "").strip(),
                dataset_version=selectors.dataset_version_get(form.get("dataset_version", "")),
                judge=selectors.judge_get(form["judge"]) if form.get("judge") else None,
                user=request.user,
            )
        except ApplicationError as exc:
            _say(request, exc)
        else:
            enqueue_gate(run.pk)
            messages.success(request, f"Gate {run.pk} queued.")
            return redirect("judges:gate", pk=run.pk)
    context = {"form": form, "judges": selectors.judge_latest_list()}
    return render(request, "judges/gate_new.html", context)


@role_required
@require_GET
def gate_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = _or_404(selectors.gate_run_get, pk)
    context = {
        "run": run,
        "results": run.results or {},
        "live": selectors.live_results_for(run),
    }
    return render(request, "judges/gate_detail.html", context)
