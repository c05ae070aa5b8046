"""Reads of the serving app: which checkpoint answers a request's `model`, which arm a rater
gets, which checkpoint gave an answer that feedback quotes, and an experiment's results."""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone
from rest_framework import status

from apps.core.exceptions import ApplicationError
from apps.core.ids import parse_id
from apps.evaluation import stats as evaluation_stats
from apps.feedback.models import Comparison, RaterTombstone, Rating
from apps.feedback.selectors import latest_revisions
from apps.quality.models import Verdict
from apps.registry.models import Alias, Checkpoint
from apps.serving.models import Arm, Experiment, ServedAnswer

EXPERIMENT_PREFIX = "experiment:"


@dataclass(frozen=True)
class Target:
    """What answers one request: the checkpoint, and how the request's `model` got there."""

    checkpoint: Checkpoint
    alias: str = ""
    experiment: Experiment | None = None
    arm: Arm | None = None


def _not_found(model: str, message: str | None = None) -> ApplicationError:
    return ApplicationError(
        message
        or f"The model '{model}' does not exist: name an alias, a checkpoint or 'experiment:<id>'.",
        code="model_not_found",
        status_code=status.HTTP_404_NOT_FOUND,
        fields={"model": ["is not an alias, a checkpoint or a running experiment"]},
    )


def _checkpoints() -> QuerySet[Checkpoint]:
    return Checkpoint.objects.select_related("base_model")


def experiment_by_ref(ref: str) -> Experiment | None:
    """An experiment by id or by name."""
    experiments = Experiment.objects.select_related("alias")
    if (pk := parse_id(ref)) is not None:
        found = experiments.filter(pk=pk).first()
        if found is not None:
            return found
    return experiments.filter(name=ref).first()


def resolve_model(model: str, *, rater: str | None) -> Target:
    """The checkpoint that answers MODEL: `experiment:<id or name>` (the rater's arm), an alias
    (the rater's arm when a running experiment owns the alias), a checkpoint name, or the name of
    a running experiment — in that order. Retired checkpoints are refused."""
    model = (model or "").strip()
    if model.startswith(EXPERIMENT_PREFIX):
        experiment = experiment_by_ref(model.removeprefix(EXPERIMENT_PREFIX))
        if experiment is None:
            raise _not_found(model)
        return _through_experiment(experiment, rater=rater, model=model)
    alias = Alias.objects.select_related("checkpoint__base_model").filter(name=model).first()
    if alias is not None:
        running = (
            Experiment.objects.filter(alias=alias, status=Experiment.Status.RUNNING)
            .order_by("-id")
            .first()
        )
        if running is not None:
            return _through_experiment(running, rater=rater, model=model)
        return _usable(Target(checkpoint=alias.checkpoint, alias=alias.name), model)
    checkpoint = _checkpoints().filter(name=model).first()
    if checkpoint is not None:
        return _usable(Target(checkpoint=checkpoint), model)
    experiment = Experiment.objects.filter(name=model, status=Experiment.Status.RUNNING).first()
    if experiment is not None:
        return _through_experiment(experiment, rater=rater, model=model)
    raise _not_found(model)


def _usable(target: Target, model: str) -> Target:
    if target.checkpoint.status == Checkpoint.Status.RETIRED:
        raise _not_found(model, f"The checkpoint '{target.checkpoint.name}' is retired.")
    return target


def _through_experiment(experiment: Experiment, *, rater: str | None, model: str) -> Target:
    if experiment.status != Experiment.Status.RUNNING:
        raise ApplicationError(
            f"The experiment '{experiment.name}' is {experiment.status}, not running.",
            code="experiment_not_running",
            fields={"model": [f"experiment '{experiment.name}' is {experiment.status}"]},
        )
    arm = assign_arm(experiment, rater)
    checkpoint = arm.target()
    return _usable(
        Target(
            checkpoint=checkpoint,
            alias=experiment.alias.name if experiment.alias_id else "",
            experiment=experiment,
            arm=arm,
        ),
        model,
    )


def experiment_arms(experiment: Experiment) -> list[Arm]:
    return list(
        experiment.arms.select_related(
            "checkpoint__base_model", "alias__checkpoint__base_model", "resolved__base_model"
        ).order_by("id")
    )


def rater_point(experiment_id: int, rater: str) -> float:
    """Where RATER falls in [0, 1) for one experiment: a hash, so the same rater always gets the
    same arm, and different experiments split the same raters independently."""
    digest = hashlib.sha256(f"sinkhole-experiment\x00{experiment_id}\x00{rater}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_arm(experiment: Experiment, rater: str | None, arms: list[Arm] | None = None) -> Arm:
    """The arm RATER gets: deterministic by rater, in proportion to the arms' weights. A request
    without a rater gets a weighted random arm (the split holds; the rater's experience does not
    stay put, which only an id can give)."""
    arms = arms if arms is not None else experiment_arms(experiment)
    if not arms:
        raise ApplicationError(
            f"The experiment '{experiment.name}' has no arms.", code="experiment_empty"
        )
    point = rater_point(experiment.pk, rater) if rater else random.random()  # noqa: S311 - not security
    total = sum(arm.weight for arm in arms)
    edge = 0.0
    for arm in arms:
        edge += arm.weight / total
        if point < edge:
            return arm
    return arms[-1]


def served_answers_by_interaction(interaction_ids: list[str]) -> dict[str, tuple[str, str]]:
    """interaction id → (model, checkpoint name) for the ids that exist, in one query. The
    feedback ingest calls it to attach events that quote an id to the checkpoint that answered;
    `model` is the base model's name for a base checkpoint, else the checkpoint's own name."""
    if not interaction_ids:
        return {}
    rows = ServedAnswer.objects.filter(interaction_id__in=set(interaction_ids)).values_list(
        "interaction_id", "checkpoint__name", "checkpoint__kind", "checkpoint__base_model__name"
    )
    return {
        interaction_id: (base if kind == Checkpoint.Kind.BASE else name, name)
        for interaction_id, name, kind, base in rows
    }


@dataclass(frozen=True)
class TracedAnswer:
    """A gateway answer that a Langfuse trace or observation id names."""

    interaction_id: str
    source_id: int | None
    rater_hash: str
    messages: list[dict[str, Any]]
    response: str


def served_answers_by_trace(ids: list[str]) -> dict[str, TracedAnswer]:
    """Langfuse id → the gateway answer it names, in one query: an interaction id itself
    (`chatcmpl-…`), its 32 hex digits (the trace id an answer gives when the request named
    none), or the trace id the request named (`X-Sinkhole-Trace-Id`, `traceparent`). A trace that
    holds several answers (a conversation) names its latest."""
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    derived = {f"chatcmpl-{i}" for i in wanted if _HEX32.fullmatch(i)}
    rows = (
        ServedAnswer.objects.filter(Q(interaction_id__in=wanted | derived) | Q(trace_id__in=wanted))
        .order_by("created_at", "id")
        .values_list(
            "interaction_id", "trace_id", "source_id", "rater_hash", "messages", "response"
        )
    )
    found: dict[str, TracedAnswer] = {}
    for interaction_id, trace_id, source_id, rater, messages, response in rows:
        answer = TracedAnswer(interaction_id, source_id, rater, messages or [], response)
        for key in (interaction_id, interaction_id.removeprefix("chatcmpl-"), trace_id):
            if key in wanted:
                found[key] = answer  # later answers overwrite: a trace names its latest
    return found


_HEX32 = re.compile(r"[0-9a-f]{32}")


def model_name_for(checkpoint: Checkpoint) -> str:
    """The `model` an answer of CHECKPOINT carries in feedback and leaderboards."""
    return (
        checkpoint.base_model.name if checkpoint.kind == Checkpoint.Kind.BASE else checkpoint.name
    )


def experiment_list() -> QuerySet[Experiment]:
    return Experiment.objects.select_related("alias__checkpoint").annotate(
        arm_count=Count("arms", distinct=True)
    )


# ---- results -------------------------------------------------------------------------------


def _usable_events(queryset: QuerySet, event_field: str) -> QuerySet:
    """Leave out feedback the quality pipeline held back (quarantined or rejected), raters who
    asked to be forgotten and earlier revisions of changed feedback (only the latest counts);
    events not judged yet still count (the experiment is live)."""
    held = Verdict.objects.filter(event=OuterRef(event_field), is_current=True).exclude(
        status=Verdict.Status.ACCEPTED
    )
    forgotten = RaterTombstone.objects.filter(rater_hash=OuterRef("rater_hash"))
    return latest_revisions(
        queryset.exclude(Exists(held))
        .exclude(Exists(forgotten))
        .exclude(**{f"{event_field.removesuffix('_id')}__status": "quarantined"}),
        event_ref=event_field,
    )


def experiment_window(experiment: Experiment) -> tuple[Any, Any]:
    return experiment.started_at, experiment.stopped_at or timezone.now()


def _rate(k: float, n: int, confidence: float) -> dict[str, Any]:
    if n <= 0:
        return {"rate": None, "lower": None, "upper": None}
    p, lo, hi = evaluation_stats.wilson_interval(k, n, confidence)
    return {"rate": p, "lower": lo, "upper": hi}


def experiment_results(experiment: Experiment) -> dict[str, Any]:
    """Per arm: thumbs-up rate and head-to-head win rate (against the other arms) with Wilson
    intervals; for each arm against the control: the difference, the events still needed for a
    verdict at the experiment's confidence and power, and the verdict. Counted: feedback whose
    checkpoint is the arm's and that came while the experiment ran."""
    arms = experiment_arms(experiment)
    conf = experiment.confidence
    start, end = experiment_window(experiment)
    by_checkpoint: dict[str, Arm] = {}
    for arm in arms:
        by_checkpoint.setdefault(arm.target().name, arm)
    names = list(by_checkpoint)
    thumbs: dict[str, tuple[int, int]] = {}
    pairs: dict[tuple[str, str], list[float]] = defaultdict(
        lambda: [0.0, 0.0]
    )  # (a, b) -> [a wins, n]
    if start is not None and names:
        window = Q(created_at__gte=start, created_at__lte=end)
        ratings = _usable_events(
            Rating.objects.filter(window, checkpoint__in=names, value__isnull=False), "event_id"
        )
        for checkpoint, ups, total in (
            ratings.values("checkpoint")
            .annotate(ups=Count("id", filter=Q(value=1)), total=Count("id"))
            .values_list("checkpoint", "ups", "total")
        ):
            thumbs[checkpoint] = (ups, total)
        comparisons = _usable_events(
            Comparison.objects.filter(
                window,
                interaction_a__checkpoint__in=names,
                interaction_b__checkpoint__in=names,
            ).exclude(interaction_a__checkpoint=F("interaction_b__checkpoint")),
            "event_id",
        )
        for a, b, outcome, count in (
            comparisons.values("interaction_a__checkpoint", "interaction_b__checkpoint", "outcome")
            .annotate(count=Count("id"))
            .values_list(
                "interaction_a__checkpoint", "interaction_b__checkpoint", "outcome", "count"
            )
        ):
            score = {"a": 1.0, "b": 0.0}.get(outcome, 0.5)  # tie and both_bad: half a win each
            pairs[(a, b)][0] += score * count
            pairs[(a, b)][1] += count
            pairs[(b, a)][0] += (1 - score) * count
            pairs[(b, a)][1] += count

    control = next((arm for arm in arms if arm.is_control), arms[0] if arms else None)
    control_name = control.target().name if control else ""
    rows = []
    for arm in arms:
        name = arm.target().name
        ups, n = thumbs.get(name, (0, 0))
        wins = sum(v[0] for (a, _), v in pairs.items() if a == name)
        battles = int(sum(v[1] for (a, _), v in pairs.items() if a == name))
        row: dict[str, Any] = {
            "arm": arm.name,
            "id": arm.pk,
            "checkpoint": name,
            "alias": arm.alias.name if arm.alias_id else None,
            "weight": arm.weight,
            "is_control": arm is control,
            "thumbs": {"up": ups, "down": n - ups, "n": n, **_rate(ups, n, conf)},
            "head_to_head": {"wins": wins, "n": battles, **_rate(wins, battles, conf)},
        }
        if arm is not control and control is not None:
            row["versus_control"] = _versus(
                experiment,
                thumbs.get(control_name, (0, 0)),
                (ups, n),
                pairs.get((name, control_name), [0.0, 0.0]),
            )
        rows.append(row)
    return {
        "experiment": experiment.name,
        "status": experiment.status,
        "confidence": conf,
        "power": experiment.power,
        "min_events": experiment.min_events,
        "window": {"start": start, "end": end if start else None},
        "arms": rows,
        "decision": _decision(rows),
    }


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else value


def _versus(
    experiment: Experiment, control: tuple[int, int], arm: tuple[int, int], pair: list[float]
) -> dict[str, Any]:
    """The arm against the control: thumbs-up difference (Newcombe interval, the same test the
    evaluation pages use), head-to-head win rate (Wilson), events still needed, and the verdict.
    No verdict before `min_events` per arm, whatever the intervals say."""
    stats = evaluation_stats
    conf, power, minimum = experiment.confidence, experiment.power, experiment.min_events
    (up_c, n_c), (up_a, n_a) = control, arm
    cmp = stats.compare_proportions(up_c, n_c, up_a, n_a, confidence=conf, power=power)
    enough = min(n_c, n_a) >= minimum
    thumbs_verdict = cmp.verdict if enough and cmp.verdict in ("better", "worse") else None
    needed = None
    if thumbs_verdict:
        needed = 0
    elif cmp.needed_per_arm < stats.NO_FINITE_N:
        needed = max(cmp.remaining, minimum - min(n_c, n_a), 0)
    out: dict[str, Any] = {
        "difference": _number(cmp.diff),
        "lower": _number(cmp.diff_lower) if n_c and n_a else None,
        "upper": _number(cmp.diff_upper) if n_c and n_a else None,
        "p_value": cmp.p_value if n_c and n_a else None,
        "events_needed": needed,
    }
    wins, battles = pair[0], int(pair[1])
    out["head_to_head"] = {"wins": wins, "n": battles, **_rate(wins, battles, conf)}
    h2h_verdict = None
    if battles >= minimum:
        if out["head_to_head"]["lower"] > 0.5:
            h2h_verdict = "better"
        elif out["head_to_head"]["upper"] < 0.5:
            h2h_verdict = "worse"
    verdicts = {v for v in (thumbs_verdict, h2h_verdict) if v}
    if len(verdicts) == 1:
        out["verdict"] = verdicts.pop()
        out["basis"] = " and ".join(
            name for name, v in (("thumbs", thumbs_verdict), ("head_to_head", h2h_verdict)) if v
        )
        out["events_needed"] = 0
    else:
        out["verdict"] = "no difference yet"
        out["basis"] = "conflicting signals" if verdicts else "not enough evidence"
    return out


def _decision(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Which arm a promote would pick: the best arm that beats the control, else the control when
    every other arm lost, else none yet."""
    challengers = [row for row in rows if not row["is_control"]]
    better = [row for row in challengers if row["versus_control"]["verdict"] == "better"]
    if better:
        best = max(better, key=lambda row: row["versus_control"]["difference"] or 0.0)
        return {"winner": best["arm"], "checkpoint": best["checkpoint"], "verdict": "better"}
    control = next((row for row in rows if row["is_control"]), None)
    if (
        challengers
        and control
        and all(row["versus_control"]["verdict"] == "worse" for row in challengers)
    ):
        return {"winner": control["arm"], "checkpoint": control["checkpoint"], "verdict": "worse"}
    return {"winner": None, "checkpoint": None, "verdict": "no difference yet"}
