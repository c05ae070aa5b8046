"""Writes of the serving app: recording served answers, and the experiment lifecycle
(create → start → stop → promote / roll back). Alias moves go through the registry's services,
so a promote is an ordinary, recorded `AliasMove` with the experiment named in its reason."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from rest_framework import status

from apps.core.exceptions import ApplicationError
from apps.feedback.redaction import redact_event
from apps.registry.models import Alias, AliasMove, Checkpoint
from apps.registry.services import alias_rollback, alias_set
from apps.serving import selectors
from apps.serving.models import Arm, Experiment, ServedAnswer
from apps.sources.hashing import rater_hash
from apps.sources.models import Source


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError("The request is invalid; see fields.", fields={field: [message]})


def _conflict(message: str) -> ApplicationError:
    return ApplicationError(message, code="conflict", status_code=status.HTTP_409_CONFLICT)


# ---- served answers ------------------------------------------------------------------------


def new_interaction_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def trace_id_of(interaction_id: str) -> str:
    """The Langfuse/OpenTelemetry trace id an answer gives when the request named none: the
    interaction id's 32 hex digits, which is a valid W3C trace id."""
    return interaction_id.removeprefix("chatcmpl-")


def served_answer_start(
    *,
    source: Source | None,
    target: selectors.Target,
    requested_model: str,
    messages: list[dict[str, Any]],
    rater: str | None,
    backend: str,
    stream: bool,
    trace_id: str = "",
) -> ServedAnswer:
    """Record an answer before it is generated, so that its interaction id resolves at once
    (feedback may arrive while a stream is still running). The prompt is stored after PII
    redaction when the source redacts. TRACE_ID is the Langfuse trace the client put the call
    in (scores on that trace then count for this answer's checkpoint); without one the answer
    is its own trace, named by the interaction id's hex digits."""
    if source is not None and source.redact_pii:
        messages = redact_event({"messages": messages})[0]["messages"]
    interaction_id = new_interaction_id()
    return ServedAnswer.objects.create(
        interaction_id=interaction_id,
        trace_id=trace_id or trace_id_of(interaction_id),
        source=source,
        checkpoint=target.checkpoint,
        requested_model=requested_model[:200],
        alias=target.alias,
        experiment=target.experiment,
        arm=target.arm,
        rater_hash=rater_hash(source.pk, rater) if source is not None and rater else "",
        backend=backend,
        stream=stream,
        messages=messages,
    )


def served_answer_finish(
    *,
    answer: ServedAnswer,
    response: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    finish_reason: str,
    latency_ms: int,
    error: str = "",
) -> ServedAnswer:
    if response and answer.source is not None and answer.source.redact_pii:
        response = redact_event({"response": response})[0]["response"]
    answer.response = response
    answer.prompt_tokens = prompt_tokens
    answer.completion_tokens = completion_tokens
    answer.finish_reason = finish_reason[:20]
    answer.latency_ms = max(0, latency_ms)
    answer.error = error[:500]
    answer.save(
        update_fields=[
            "response",
            "prompt_tokens",
            "completion_tokens",
            "finish_reason",
            "latency_ms",
            "error",
        ]
    )
    return answer


# ---- experiments ---------------------------------------------------------------------------


@dataclass
class ArmSpec:
    checkpoint: str = ""
    alias: str = ""
    weight: int = 1
    is_control: bool = False
    name: str = ""


def _build_arms(experiment: Experiment, arms: list[ArmSpec]) -> list[Arm]:
    if len(arms) < 2:
        raise _invalid("arms", "an experiment needs at least two arms")
    if sum(1 for spec in arms if spec.is_control) > 1:
        raise _invalid("arms", "at most one arm is the control")
    if not any(spec.is_control for spec in arms):
        arms[0].is_control = True  # the first arm is the control unless one is named
    built, names = [], set()
    for index, spec in enumerate(arms):
        if bool(spec.checkpoint) == bool(spec.alias):
            raise _invalid(f"arms.{index}", "name either a checkpoint or an alias")
        arm = Arm(experiment=experiment, weight=spec.weight, is_control=spec.is_control)
        if spec.checkpoint:
            arm.checkpoint = Checkpoint.objects.filter(name=spec.checkpoint).first()
            if arm.checkpoint is None:
                raise _invalid(
                    f"arms.{index}.checkpoint", f"there is no checkpoint '{spec.checkpoint}'"
                )
        else:
            arm.alias = Alias.objects.filter(name=spec.alias).first()
            if arm.alias is None:
                raise _invalid(f"arms.{index}.alias", f"there is no alias '{spec.alias}'")
        if spec.weight < 1:
            raise _invalid(f"arms.{index}.weight", "must be a whole number of at least 1")
        arm.name = spec.name or spec.checkpoint or spec.alias
        if arm.name in names:
            raise _invalid(f"arms.{index}.name", f"two arms are called '{arm.name}'; name them")
        names.add(arm.name)
        built.append(arm)
    return built


def experiment_create(
    *,
    name: str,
    arms: list[ArmSpec],
    alias: str = "",
    description: str = "",
    confidence: float = 0.95,
    power: float = 0.8,
    min_events: int = 30,
    user: Any = None,
) -> Experiment:
    """A draft experiment with its arms (the first is the control unless one says it is)."""
    if Experiment.objects.filter(name=name).exists():
        raise _invalid("name", f"an experiment called '{name}' exists")
    alias_row = None
    if alias:
        alias_row = Alias.objects.filter(name=alias).first()
        if alias_row is None:
            raise _invalid("alias", f"there is no alias '{alias}'")
    with transaction.atomic():
        experiment = Experiment(
            name=name,
            description=description,
            alias=alias_row,
            confidence=confidence,
            power=power,
            min_events=min_events,
            created_by=user if getattr(user, "pk", None) else None,
        )
        experiment.full_clean()
        experiment.save()
        for arm in _build_arms(experiment, arms):
            arm.full_clean(exclude=["experiment"])
            arm.save()
    return experiment


def experiment_update(
    *, experiment: Experiment, arms: list[ArmSpec] | None = None, **fields: Any
) -> Experiment:
    """Change a draft: its settings, and its arms (replaced as a whole)."""
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if experiment.status != Experiment.Status.DRAFT:
            raise _conflict(
                f"'{experiment.name}' is {experiment.status}; only a draft can be changed."
            )
        if "alias" in fields:
            name = fields.pop("alias")
            experiment.alias = Alias.objects.filter(name=name).first() if name else None
            if name and experiment.alias is None:
                raise _invalid("alias", f"there is no alias '{name}'")
        for key, value in fields.items():
            setattr(experiment, key, value)
        experiment.full_clean()
        experiment.save()
        if arms is not None:
            experiment.arms.all().delete()
            for arm in _build_arms(experiment, arms):
                arm.full_clean(exclude=["experiment"])
                arm.save()
    return experiment


def experiment_delete(*, experiment: Experiment) -> None:
    if experiment.status == Experiment.Status.RUNNING:
        raise _conflict(f"'{experiment.name}' is running; stop it first.")
    experiment.delete()


def experiment_start(*, experiment: Experiment) -> Experiment:
    """Fix each arm's checkpoint (an alias arm serves where the alias points now) and open the
    window in which feedback counts. A stopped experiment can start again; its window then runs
    from the first start."""
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if experiment.status not in (Experiment.Status.DRAFT, Experiment.Status.STOPPED):
            raise _conflict(f"'{experiment.name}' is {experiment.status}; it cannot start.")
        if (
            experiment.alias_id
            and Experiment.objects.filter(
                alias_id=experiment.alias_id, status=Experiment.Status.RUNNING
            )
            .exclude(pk=experiment.pk)
            .exists()
        ):
            raise _conflict(
                f"Another experiment is already running on the alias '{experiment.alias.name}'."
            )
        arms = selectors.experiment_arms(experiment)
        seen: dict[int, str] = {}
        for arm in arms:
            checkpoint = arm.resolved or (
                arm.checkpoint if arm.checkpoint_id else arm.alias.checkpoint
            )
            if checkpoint.status != Checkpoint.Status.PUBLISHED:
                raise _invalid(
                    "arms",
                    f"arm '{arm.name}' serves {checkpoint.name}, which is {checkpoint.status}; publish it first",
                )
            if checkpoint.pk in seen:
                raise _invalid(
                    "arms",
                    f"arms '{seen[checkpoint.pk]}' and '{arm.name}' serve the same checkpoint {checkpoint.name}",
                )
            seen[checkpoint.pk] = arm.name
            if arm.resolved_id is None:
                arm.resolved = checkpoint
                arm.save(update_fields=["resolved"])
        experiment.status = Experiment.Status.RUNNING
        experiment.started_at = experiment.started_at or timezone.now()
        experiment.stopped_at = None
        experiment.save(update_fields=["status", "started_at", "stopped_at"])
    return experiment


def experiment_stop(*, experiment: Experiment) -> Experiment:
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if experiment.status != Experiment.Status.RUNNING:
            raise _conflict(f"'{experiment.name}' is {experiment.status}, not running.")
        experiment.status = Experiment.Status.STOPPED
        experiment.stopped_at = timezone.now()
        experiment.save(update_fields=["status", "stopped_at"])
    return experiment


def experiment_promote(
    *, experiment: Experiment, arm: Arm | None = None, user: Any = None
) -> Experiment:
    """Move the experiment's alias to ARM's checkpoint (by default the arm the verdict picked),
    recorded as an alias move whose reason names the experiment; the experiment stops and is
    `decided`. Naming an arm overrides a missing verdict (the reason says so)."""
    if experiment.alias_id is None:
        raise _invalid("alias", f"'{experiment.name}' has no alias to promote")
    if experiment.status not in (Experiment.Status.RUNNING, Experiment.Status.STOPPED):
        raise _conflict(
            f"'{experiment.name}' is {experiment.status}; only a running or stopped experiment can be promoted."
        )
    decision = selectors.experiment_results(experiment)["decision"]
    if arm is None:
        if decision["winner"] is None:
            raise _conflict("There is no verdict yet; name the arm to promote it anyway.")
        arm = experiment.arms.get(name=decision["winner"])
        why = f"verdict: {decision['winner']} {decision['verdict']}"
    else:
        if arm.experiment_id != experiment.pk:
            raise _invalid("arm", "is not an arm of this experiment")
        why = (
            "verdict"
            if decision["winner"] == arm.name
            else f"chosen by hand (verdict: {decision['verdict']})"
        )
    checkpoint = arm.target()
    with transaction.atomic():
        experiment = (
            Experiment.objects.select_for_update(of=("self",))
            .select_related("alias")
            .get(pk=experiment.pk)
        )
        last = (
            AliasMove.objects.filter(alias_id=experiment.alias_id)
            .order_by("-id")
            .values_list("id", flat=True)
            .first()
        )
        alias_set(
            name=experiment.alias.name,
            checkpoint=checkpoint,
            user=user,
            reason=f"experiment {experiment.name} promoted arm {arm.name} ({why})",
        )
        move = AliasMove.objects.filter(alias_id=experiment.alias_id).order_by("-id").first()
        experiment.promote_move = move if move is not None and move.pk != last else None
        experiment.decided_arm = arm
        experiment.status = Experiment.Status.DECIDED
        experiment.stopped_at = experiment.stopped_at or timezone.now()
        experiment.save(update_fields=["promote_move", "decided_arm", "status", "stopped_at"])
    return experiment


def experiment_rollback(*, experiment: Experiment, user: Any = None) -> Experiment:
    """Undo the promote: the alias goes back where it pointed before (a recorded rollback move),
    and the experiment is `stopped` again, undecided. Refused when the alias has moved since."""
    with transaction.atomic():
        experiment = (
            Experiment.objects.select_for_update(of=("self",))
            .select_related("alias", "promote_move")
            .get(pk=experiment.pk)
        )
        if experiment.status != Experiment.Status.DECIDED:
            raise _conflict(
                f"'{experiment.name}' is {experiment.status}; only a promoted experiment rolls back."
            )
        move = experiment.promote_move
        if move is not None:
            latest = AliasMove.objects.filter(alias_id=experiment.alias_id).order_by("-id").first()
            if latest is None or latest.pk != move.pk:
                raise _conflict(
                    f"The alias '{experiment.alias.name}' has moved since the promote; roll it back in the registry."
                )
            alias_rollback(
                name=experiment.alias.name,
                user=user,
                reason=f"experiment {experiment.name} rolled back",
            )
        experiment.status = Experiment.Status.STOPPED
        experiment.decided_arm = None
        experiment.promote_move = None
        experiment.save(update_fields=["status", "decided_arm", "promote_move"])
    return experiment
