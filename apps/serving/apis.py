"""The experiments API, under /api/v1/experiments. Thin: validate, call one service or selector,
serialize. `{ref}` is an experiment's id or name.

Who may call what:
- reading (list, detail, results): a login, or a secret key (sk-…);
- `assign`: any of the source's keys (a front-end that serves itself asks which arm its user
  gets) or a login;
- changing anything (create, edit, delete, start, stop, promote, roll back): an admin's login or
  `registry.change_alias`, by session only — the registry's rule for moving aliases, since a
  promote moves one."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ApplicationError
from apps.core.openapi import results_of
from apps.curation.roles import has_role
from apps.registry.permissions import CanPublish, CanRead
from apps.serving import selectors, services
from apps.serving.models import Arm, Experiment
from apps.sources.models import ApiKey


class _CanAssign(BasePermission):
    message = "Asking for an arm needs one of the source's keys or a login."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, ApiKey) or has_role(request.user)


def _experiment(ref: str) -> Experiment:
    experiment = selectors.experiment_by_ref(ref)
    if experiment is None:
        raise ApplicationError(
            f"There is no experiment '{ref}'.", code="not_found", status_code=404
        )
    return experiment


class ArmSerializer(serializers.Serializer):
    name = serializers.SlugField(
        max_length=100, required=False, help_text="Default: the checkpoint or alias."
    )
    checkpoint = serializers.SlugField(
        max_length=100, required=False, help_text="A checkpoint name…"
    )
    alias = serializers.SlugField(
        max_length=100, required=False, help_text="…or an alias (fixed at start)."
    )
    weight = serializers.IntegerField(min_value=1, max_value=1_000_000, default=1)
    is_control = serializers.BooleanField(default=False, help_text="Default: the first arm.")


class ArmOutputSerializer(serializers.ModelSerializer):
    checkpoint = serializers.CharField(source="checkpoint.name", default=None)
    alias = serializers.CharField(source="alias.name", default=None)
    serves = serializers.SerializerMethodField(
        help_text="The checkpoint it serves (fixed at start)."
    )

    class Meta:
        model = Arm
        fields = ["id", "name", "checkpoint", "alias", "serves", "weight", "is_control"]

    def get_serves(self, arm: Arm) -> str:
        return arm.target().name


class ExperimentInputSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    description = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default=""
    )
    alias = serializers.SlugField(
        max_length=100,
        required=False,
        allow_blank=True,
        default="",
        help_text="The alias a verdict may promote; requests for it are split while running.",
    )
    confidence = serializers.FloatField(min_value=0.5, max_value=0.999, default=0.95)
    power = serializers.FloatField(min_value=0.05, max_value=0.99, default=0.8)
    min_events = serializers.IntegerField(min_value=1, max_value=10_000_000, default=30)
    arms = ArmSerializer(many=True)


class ExperimentPatchSerializer(ExperimentInputSerializer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, partial=True, **kwargs)
        self.fields.pop("name")


class ExperimentOutputSerializer(serializers.ModelSerializer):
    # A plain string, not a choice field: spectacular would name one more `status` enum.
    status = serializers.CharField(help_text="draft, running, stopped or decided.")
    alias = serializers.CharField(source="alias.name", default=None)
    arms = serializers.SerializerMethodField()
    decided_arm = serializers.CharField(source="decided_arm.name", default=None)
    model = serializers.SerializerMethodField(
        help_text="What to send as `model` to /v1/chat/completions."
    )

    class Meta:
        model = Experiment
        fields = [
            "id",
            "name",
            "description",
            "status",
            "alias",
            "confidence",
            "power",
            "min_events",
            "started_at",
            "stopped_at",
            "decided_arm",
            "created_at",
            "model",
            "arms",
        ]

    def get_arms(self, experiment: Experiment) -> list[dict[str, Any]]:
        return ArmOutputSerializer(selectors.experiment_arms(experiment), many=True).data

    def get_model(self, experiment: Experiment) -> str:
        return f"{selectors.EXPERIMENT_PREFIX}{experiment.name}"


def _specs(arms: list[dict[str, Any]]) -> list[services.ArmSpec]:
    return [services.ArmSpec(**arm) for arm in arms]


def _out(experiment: Experiment, code: int = 200) -> Response:
    experiment = selectors.experiment_by_ref(str(experiment.pk))
    return Response(ExperimentOutputSerializer(experiment).data, status=code)


class ExperimentListApi(APIView):
    def get_permissions(self) -> list[BasePermission]:
        return [CanRead()] if self.request.method == "GET" else [CanPublish()]

    @extend_schema(
        operation_id="v1_experiments_list",
        responses=results_of(ExperimentOutputSerializer, "ExperimentList"),
        tags=["experiments"],
    )
    def get(self, request: Request) -> Response:
        rows = selectors.experiment_list()
        wanted = request.query_params.get("status")
        if wanted:
            rows = rows.filter(status=wanted)
        return Response({"results": ExperimentOutputSerializer(rows, many=True).data})

    @extend_schema(
        request=ExperimentInputSerializer,
        responses={201: ExperimentOutputSerializer},
        tags=["experiments"],
    )
    def post(self, request: Request) -> Response:
        data = ExperimentInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        experiment = services.experiment_create(
            arms=_specs(fields.pop("arms")), user=request.user, **fields
        )
        return _out(experiment, status.HTTP_201_CREATED)


class ExperimentDetailApi(APIView):
    def get_permissions(self) -> list[BasePermission]:
        return [CanRead()] if self.request.method == "GET" else [CanPublish()]

    @extend_schema(responses=ExperimentOutputSerializer, tags=["experiments"])
    def get(self, request: Request, ref: str) -> Response:
        return _out(_experiment(ref))

    @extend_schema(
        request=ExperimentPatchSerializer,
        responses=ExperimentOutputSerializer,
        tags=["experiments"],
    )
    def patch(self, request: Request, ref: str) -> Response:
        data = ExperimentPatchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        arms = fields.pop("arms", None)
        experiment = services.experiment_update(
            experiment=_experiment(ref), arms=_specs(arms) if arms is not None else None, **fields
        )
        return _out(experiment)

    @extend_schema(responses={204: None}, tags=["experiments"])
    def delete(self, request: Request, ref: str) -> Response:
        services.experiment_delete(experiment=_experiment(ref))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExperimentStartApi(APIView):
    permission_classes = [CanPublish]

    @extend_schema(request=None, responses=ExperimentOutputSerializer, tags=["experiments"])
    def post(self, request: Request, ref: str) -> Response:
        return _out(services.experiment_start(experiment=_experiment(ref)))


class ExperimentStopApi(APIView):
    permission_classes = [CanPublish]

    @extend_schema(request=None, responses=ExperimentOutputSerializer, tags=["experiments"])
    def post(self, request: Request, ref: str) -> Response:
        return _out(services.experiment_stop(experiment=_experiment(ref)))


class PromoteInputSerializer(serializers.Serializer):
    arm = serializers.SlugField(
        max_length=100,
        required=False,
        help_text="Default: the arm the verdict picked (refused while there is none).",
    )


class ExperimentPromoteApi(APIView):
    permission_classes = [CanPublish]

    @extend_schema(
        request=PromoteInputSerializer, responses=ExperimentOutputSerializer, tags=["experiments"]
    )
    def post(self, request: Request, ref: str) -> Response:
        data = PromoteInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        experiment = _experiment(ref)
        arm = None
        if data.validated_data.get("arm"):
            arm = experiment.arms.filter(name=data.validated_data["arm"]).first()
            if arm is None:
                raise ApplicationError(
                    "The request is invalid; see fields.",
                    fields={"arm": ["is not an arm of this experiment"]},
                )
        return _out(services.experiment_promote(experiment=experiment, arm=arm, user=request.user))


class ExperimentRollbackApi(APIView):
    permission_classes = [CanPublish]

    @extend_schema(request=None, responses=ExperimentOutputSerializer, tags=["experiments"])
    def post(self, request: Request, ref: str) -> Response:
        return _out(services.experiment_rollback(experiment=_experiment(ref), user=request.user))


class _CanReadResults(BasePermission):
    message = (
        "Experiment results are counted over every source's feedback: a login with a role "
        "reads them, a source's key does not."
    )

    def has_permission(self, request: Request, view: Any) -> bool:
        return not isinstance(request.auth, ApiKey) and has_role(request.user)


class ExperimentResultsApi(APIView):
    permission_classes = [_CanReadResults]

    @extend_schema(
        responses=dict,
        tags=["experiments"],
        description=(
            "Per arm: thumbs-up rate and head-to-head win rate with Wilson intervals; against the "
            "control: the difference with its interval, events still needed and the verdict."
        ),
    )
    def get(self, request: Request, ref: str) -> Response:
        return Response(selectors.experiment_results(_experiment(ref)))


class ExperimentAssignApi(APIView):
    permission_classes = [_CanAssign]

    @extend_schema(
        parameters=[
            OpenApiParameter("rater", str, required=True, description="Your end user's id.")
        ],
        responses=dict,
        tags=["experiments"],
    )
    def get(self, request: Request, ref: str) -> Response:
        rater = request.query_params.get("rater", "")
        if not rater or len(rater) > 200:
            raise ApplicationError(
                "The request is invalid; see fields.",
                fields={"rater": ["give the end user's id (1-200 characters)"]},
            )
        experiment = _experiment(ref)
        target = selectors.resolve_model(
            f"{selectors.EXPERIMENT_PREFIX}{experiment.pk}", rater=rater
        )
        return Response(
            {
                "experiment": experiment.name,
                "arm": target.arm.name,
                "checkpoint": target.checkpoint.name,
                "model": selectors.model_name_for(target.checkpoint),
            }
        )
