"""The experiments pages: the list, a form to create one, and an experiment's page (arms, rates
with their intervals, the verdict; start/stop/promote/roll back for admins). Any logged-in
user reads; changing needs an admin (or `registry.change_alias`), as in the API."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.core.charts import interval_chart
from apps.core.exceptions import ApplicationError
from apps.curation.roles import role_required
from apps.registry.models import Alias, Checkpoint
from apps.registry.permissions import can_publish
from apps.serving import selectors, services
from apps.serving.models import Experiment

ARM_ROWS = 4


def _experiment(ref: str) -> Experiment:
    experiment = selectors.experiment_by_ref(ref)
    if experiment is None:
        raise Http404("no such experiment")
    return experiment


def _error_text(exc: ApplicationError) -> list[str]:
    if exc.fields:
        return [f"{field}: {' '.join(msgs)}" for field, msgs in exc.fields.items()]
    return [exc.message]


@role_required
def experiment_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "serving/list.html",
        {
            "experiments": selectors.experiment_list(),
            "can_change": can_publish(request.user),
        },
    )


def _form_choices() -> dict[str, Any]:
    return {
        "aliases": Alias.objects.select_related("checkpoint").order_by("name"),
        "checkpoints": Checkpoint.objects.filter(status=Checkpoint.Status.PUBLISHED).order_by(
            "name"
        ),
    }


@role_required
def experiment_new(request: HttpRequest) -> HttpResponse:
    if not can_publish(request.user):
        raise PermissionDenied
    errors: list[str] = []
    form = request.POST if request.method == "POST" else {}
    if request.method == "POST":
        arms = []
        control = form.get("control", "0")
        for i in range(ARM_ROWS):
            target = form.get(f"arm{i}_target", "")
            if not target:
                continue
            kind, _, name = target.partition(":")
            try:
                weight = int(form.get(f"arm{i}_weight") or 1)
            except ValueError:
                weight = 0
            arms.append(
                services.ArmSpec(
                    checkpoint=name if kind == "checkpoint" else "",
                    alias=name if kind == "alias" else "",
                    weight=weight,
                    is_control=control == str(i),
                    name=form.get(f"arm{i}_name", "").strip(),
                )
            )
        try:
            experiment = services.experiment_create(
                name=form.get("name", "").strip(),
                description=form.get("description", "").strip(),
                alias=form.get("alias", ""),
                confidence=float(form.get("confidence") or 0.95),
                min_events=int(form.get("min_events") or 30),
                arms=arms,
                user=request.user,
            )
        except ApplicationError as exc:
            errors = _error_text(exc)
        except ValueError:
            errors = ["confidence and minimum events must be numbers"]
        except ValidationError as exc:  # full_clean's, e.g. a name that is not a slug
            errors = [f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()]
        else:
            messages.success(request, f"Experiment {experiment.name} created (draft).")
            return redirect("serving-experiment", ref=experiment.name)
    return render(
        request,
        "serving/new.html",
        {
            **_form_choices(),
            "errors": errors,
            "form": form,
            "rows": range(ARM_ROWS),
        },
        status=400 if errors else 200,
    )


def _chart_rows(arms: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    return [
        {
            "label": f"{arm['arm']} ({arm['checkpoint']})",
            "value": arm[metric]["rate"],
            "lower": arm[metric]["lower"],
            "upper": arm[metric]["upper"],
        }
        for arm in arms
        if arm[metric]["n"]
    ]


@role_required
def experiment_detail(request: HttpRequest, ref: str) -> HttpResponse:
    experiment = _experiment(ref)
    context = _detail_context(request, experiment)
    template = (
        "serving/_results.html"
        if request.GET.get("fragment") == "results"
        else "serving/detail.html"
    )
    return render(request, template, context)


def _detail_context(request: HttpRequest, experiment: Experiment) -> dict[str, Any]:
    results = selectors.experiment_results(experiment)
    pct = f"{experiment.confidence:.0%}"
    return {
        "experiment": experiment,
        "results": results,
        "arms": selectors.experiment_arms(experiment),
        "thumbs_chart": interval_chart(
            _chart_rows(results["arms"], "thumbs"), x_label=f"thumbs-up rate, {pct} Wilson interval"
        ),
        "h2h_chart": interval_chart(
            _chart_rows(results["arms"], "head_to_head"),
            x_label=f"head-to-head win rate, {pct} Wilson interval",
        ),
        "can_change": can_publish(request.user),
        "answers": experiment.answers.select_related("checkpoint", "arm")[:20],
    }


@role_required
@require_POST
def experiment_action(request: HttpRequest, ref: str, action: str) -> HttpResponse:
    if not can_publish(request.user):
        raise PermissionDenied
    experiment = _experiment(ref)
    try:
        if action == "start":
            services.experiment_start(experiment=experiment)
        elif action == "stop":
            services.experiment_stop(experiment=experiment)
        elif action == "promote":
            arm_name = request.POST.get("arm", "")
            arm = experiment.arms.filter(name=arm_name).first() if arm_name else None
            services.experiment_promote(experiment=experiment, arm=arm, user=request.user)
        elif action == "rollback":
            services.experiment_rollback(experiment=experiment, user=request.user)
        elif action == "delete":
            services.experiment_delete(experiment=experiment)
            messages.success(request, f"Experiment {experiment.name} deleted.")
            return redirect("serving-experiments")
        else:
            raise Http404("no such action")
    except ApplicationError as exc:
        for text in _error_text(exc):
            messages.error(request, text)
    else:
        messages.success(request, f"{experiment.name}: {action} done.")
    return redirect("serving-experiment", ref=experiment.name)
