"""Reads of the judges app, with their relations loaded."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.exceptions import ApplicationError
from apps.core.ids import parse_id
from apps.datasets.models import DatasetVersion
from apps.datasets.selectors import version_get
from apps.judges.models import GateRun, Judge, JudgeAudit
from apps.serving.models import Experiment
from apps.serving.selectors import experiment_results


def judge_list() -> QuerySet[Judge]:
    return Judge.objects.select_related("checkpoint", "checkpoint__base_model").order_by(
        "name", "-version"
    )


def judge_latest_list() -> list[Judge]:
    """The newest version of each judge."""
    seen: set[str] = set()
    latest = []
    for judge in judge_list():
        if judge.name not in seen:
            seen.add(judge.name)
            latest.append(judge)
    return latest


def judge_get(ref: str) -> Judge:
    """NAME (its newest version), NAME@VERSION, or the numeric id."""
    ref = str(ref).strip()
    judges = judge_list()
    name, _, version = ref.partition("@")
    if version:
        number = parse_id(version)
        judge = judges.filter(name=name, version=number).first() if number is not None else None
    else:
        judge = judges.filter(name=name).first()
        if judge is None and (pk := parse_id(ref)) is not None:
            judge = judges.filter(pk=pk).first()
    if judge is None:
        raise ApplicationError(f"There is no judge {ref!r}.", code="not_found", status_code=404)
    return judge


def audit_list(judge: Judge | None = None) -> QuerySet[JudgeAudit]:
    audits = JudgeAudit.objects.select_related("judge")
    return audits.filter(judge__name=judge.name) if judge is not None else audits


def gate_run_list(*, candidate: object = None) -> QuerySet[GateRun]:
    runs = GateRun.objects.select_related("candidate", "against", "judge", "dataset_version")
    return runs.filter(candidate=candidate) if candidate is not None else runs


def gate_run_get(pk: int | str) -> GateRun:
    number = parse_id(str(pk))
    run = gate_run_list().filter(pk=number).first() if number is not None else None
    if run is None:
        raise ApplicationError(f"There is no gate run {pk!r}.", code="not_found", status_code=404)
    return run


def latest_passed_gate(checkpoint: object) -> GateRun | None:
    return gate_run_list(candidate=checkpoint).filter(status=GateRun.Status.PASSED).first()


def dataset_version_get(ref: str | int) -> DatasetVersion:
    """A dataset version by id ("12" or "v12"); 404 when there is none."""
    text = str(ref).strip().lstrip("v")
    number = parse_id(text)
    version = version_get(version_id=number) if number is not None else None
    if version is None:
        raise ApplicationError(
            f"There is no dataset version {ref!r}.", code="not_found", status_code=404
        )
    return version


def live_results_for(run: GateRun) -> list[dict[str, object]]:
    """Experiments where the gate's candidate served real users: their live head-to-head and
    thumbs result beside the gate's prediction (so the gate's own accuracy shows over time)."""
    from django.db.models import Q

    experiments = (
        Experiment.objects.filter(
            Q(arms__resolved=run.candidate) | Q(arms__checkpoint=run.candidate)
        )
        .distinct()
        .order_by("-id")[:5]
    )
    rows = []
    for experiment in experiments:
        results = experiment_results(experiment)
        for arm in results["arms"]:
            if arm["checkpoint"] != run.candidate.name:
                continue
            versus = arm.get("versus_control") or {}
            rows.append(
                {
                    "experiment": experiment,
                    "status": results["status"],
                    "head_to_head": versus.get("head_to_head") or arm["head_to_head"],
                    "thumbs": arm["thumbs"],
                    "decision": results["decision"],
                }
            )
    return rows
