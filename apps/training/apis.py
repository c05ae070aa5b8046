"""The training REST API: launch a run (validated before queueing), list, detail (with the loss
curve), cancel. Launching and cancelling need an admin's login (or training.add_trainingrun);
reading needs a login with a role or a secret key (apps/registry/permissions.py); a key sees only
the runs on dataset versions it may read (its own source's data alone)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ApiErrorSerializer, ApplicationError
from apps.datasets.selectors import versions_readable_by
from apps.registry.permissions import CanRead, CanTrain
from apps.sources.models import ApiKey
from apps.training import selectors, services
from apps.training.models import TrainingRun


class TrainingRunOutputSerializer(serializers.ModelSerializer):
    dataset_version = serializers.IntegerField(source="dataset_version_id")
    recipe = serializers.CharField(source="dataset_version.recipe.name")
    base_model = serializers.CharField(source="base_model.name")
    base_model_id = serializers.CharField(source="base_model.model_id")
    checkpoint = serializers.SerializerMethodField()
    created_by = serializers.CharField(
        source="created_by.get_username", allow_null=True, default=None
    )

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "status",
            "method",
            "dataset_version",
            "recipe",
            "base_model",
            "base_model_id",
            "progress",
            "step",
            "total_steps",
            "cancel_requested",
            "metrics",
            "error",
            "output_dir",
            "worker_host",
            "attempts",
            "heartbeat_at",
            "checkpoint",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_checkpoint(self, run: TrainingRun) -> str | None:
        checkpoint = selectors.run_checkpoint(run)
        return checkpoint.name if checkpoint else None


class TrainingRunDetailOutputSerializer(TrainingRunOutputSerializer):
    class Meta(TrainingRunOutputSerializer.Meta):
        fields = [*TrainingRunOutputSerializer.Meta.fields, "spec", "loss_curve", "log_tail"]


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(response=ApiErrorSerializer) for code in codes}


def _visible(request: Request, runs: QuerySet[TrainingRun]) -> QuerySet[TrainingRun]:
    """A source's key sees the runs on dataset versions it may read (its own source's data
    alone); a session sees every run."""
    if not isinstance(request.auth, ApiKey):
        return runs
    readable = versions_readable_by(source=request.auth.source).values("pk")
    return runs.filter(dataset_version__in=readable)


class TrainingRunListApi(APIView):
    """GET: runs, newest first. POST: launch one."""

    class TrainingRunCreateInputSerializer(serializers.Serializer):
        dataset_version = serializers.CharField(
            help_text="Dataset version id (its kind must equal the method)."
        )
        method = serializers.ChoiceField(choices=TrainingRun.Method.choices)
        base_model = serializers.CharField(
            required=False, allow_blank=True, help_text="Base model name or id; blank: the default."
        )
        spec = serializers.DictField(
            required=False,
            default=dict,
            help_text="Trainer spec overrides: max_steps, learning_rate, lora.r, beta…",
        )

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=TrainingRun.Status.choices, required=False)

    def get_permissions(self) -> list[Any]:
        return [CanTrain()] if self.request.method == "POST" else [CanRead()]

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: TrainingRunOutputSerializer(many=True)},
        tags=["training"],
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rows = _visible(
            request, selectors.training_run_list(status=filters.validated_data.get("status", ""))
        )[:200]
        return Response(TrainingRunOutputSerializer(rows, many=True).data)

    @extend_schema(
        request=TrainingRunCreateInputSerializer,
        responses={201: TrainingRunDetailOutputSerializer, **_errors(400, 403)},
        tags=["training"],
    )
    def post(self, request: Request) -> Response:
        data = self.TrainingRunCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = services.training_run_create(
            dataset_version=data.validated_data["dataset_version"],
            method=data.validated_data["method"],
            base_model=data.validated_data.get("base_model") or None,
            overrides=data.validated_data.get("spec") or {},
            user=request.user,
        )
        return Response(
            TrainingRunDetailOutputSerializer(selectors.training_run_get(run.pk)).data,
            status=status.HTTP_201_CREATED,
        )


class TrainingRunDetailApi(APIView):
    permission_classes = [CanRead]

    @extend_schema(
        responses={200: TrainingRunDetailOutputSerializer, **_errors(404)}, tags=["training"]
    )
    def get(self, request: Request, run_id: int) -> Response:
        run = selectors.training_run_get(run_id)
        if not _visible(request, TrainingRun.objects.filter(pk=run.pk)).exists():
            raise ApplicationError(
                f"There is no training run {run_id!r}.", code="not_found", status_code=404
            )
        return Response(TrainingRunDetailOutputSerializer(run).data)


class TrainingRunCancelApi(APIView):
    permission_classes = [CanTrain]

    @extend_schema(
        request=None,
        responses={200: TrainingRunOutputSerializer, **_errors(403, 404, 409)},
        tags=["training"],
    )
    def post(self, request: Request, run_id: int) -> Response:
        run = services.training_run_cancel(
            run=selectors.training_run_get(run_id), user=request.user
        )
        return Response(TrainingRunOutputSerializer(selectors.training_run_get(run.pk)).data)
