"""The judges REST API, under /api/v1/: judges (list, register, detail), audits (run on a
dataset version's test split or the stored preference events, list) and offline gates (queue,
detail). Reads take a login with a role or a secret key; writes an admin's login (the
registry's permissions: a judge decides what reaches users). A key reads only its own source's
data: audits (measured on every source's people) are for logins, and a key sees the gate runs
on dataset versions it may read."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ApiErrorSerializer, ApplicationError
from apps.curation.roles import has_role
from apps.datasets.selectors import versions_readable_by
from apps.judges import pairs as pair_sources
from apps.judges import selectors, services
from apps.judges.models import GateRun, Judge, JudgeAudit
from apps.registry.permissions import CanPublish, CanRead
from apps.registry.selectors import checkpoint_get
from apps.sources.models import ApiKey


class _PeopleRead(BasePermission):
    message = "Audits are measured on every source's feedback: a login with a role reads them."

    def has_permission(self, request: Request, view: Any) -> bool:
        return not isinstance(request.auth, ApiKey) and has_role(request.user)


def _gates_visible(request: Request, gates: QuerySet[GateRun]) -> QuerySet[GateRun]:
    """A key sees the gate runs on dataset versions it may read (their prompts are its own)."""
    if not isinstance(request.auth, ApiKey):
        return gates
    readable = versions_readable_by(source=request.auth.source).values("pk")
    return gates.filter(dataset_version__in=readable)


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(ApiErrorSerializer) for code in codes}


def _body(request: Request) -> Any:
    return request.data if isinstance(request.data, dict) else {}


class JudgeOutputSerializer(serializers.ModelSerializer):
    checkpoint = serializers.CharField(source="checkpoint.name", allow_null=True, default=None)

    class Meta:
        model = Judge
        fields = ["id", "name", "version", "kind", "checkpoint", "config", "description"]
        fields += ["created_at"]


class AuditOutputSerializer(serializers.ModelSerializer):
    judge = serializers.CharField(source="judge.label")

    class Meta:
        model = JudgeAudit
        fields = ["id", "judge", "source", "pairs", "agreement", "kappa", "results", "seconds"]
        fields += ["created_at"]


class GateOutputSerializer(serializers.ModelSerializer):
    candidate = serializers.CharField(source="candidate.name")
    against = serializers.CharField(source="against.name")
    judge = serializers.CharField(source="judge.label")

    class Meta:
        model = GateRun
        fields = ["id", "candidate", "against", "against_alias", "judge", "dataset_version"]
        fields += ["prompts", "line", "status", "win_rate", "win_rate_low", "win_rate_high"]
        fields += ["results", "error", "seconds", "created_at", "finished_at"]


class JudgeListApi(APIView):
    """GET the newest version of every judge; POST registers one (or its next version)."""

    class RegisterInputSerializer(serializers.Serializer):
        name = serializers.SlugField(max_length=100)
        kind = serializers.ChoiceField(choices=Judge.Kind.choices)
        checkpoint = serializers.CharField(required=False, allow_blank=True, default="")
        config = serializers.DictField(required=False, default=dict)
        description = serializers.CharField(required=False, allow_blank=True, max_length=500)

    def get_permissions(self) -> list[Any]:
        return [CanRead()] if self.request.method == "GET" else [CanPublish()]

    @extend_schema(responses={200: JudgeOutputSerializer(many=True)}, tags=["judges"])
    def get(self, request: Request) -> Response:
        return Response(JudgeOutputSerializer(selectors.judge_latest_list(), many=True).data)

    @extend_schema(
        request=RegisterInputSerializer,
        responses={201: JudgeOutputSerializer, **_errors(400, 403, 404)},
        tags=["judges"],
    )
    def post(self, request: Request) -> Response:
        data = self.RegisterInputSerializer(data=_body(request))
        data.is_valid(raise_exception=True)
        values = data.validated_data
        checkpoint = None
        if values["checkpoint"]:
            checkpoint = checkpoint_get(values["checkpoint"])
        judge = services.judge_register(
            name=values["name"],
            kind=values["kind"],
            config=values["config"],
            checkpoint=checkpoint,
            description=values.get("description", ""),
            user=request.user,
        )
        return Response(JudgeOutputSerializer(judge).data, status=status.HTTP_201_CREATED)


class JudgeDetailApi(APIView):
    permission_classes = [CanRead]

    @extend_schema(responses={200: JudgeOutputSerializer, **_errors(404)}, tags=["judges"])
    def get(self, request: Request, ref: str) -> Response:
        return Response(JudgeOutputSerializer(selectors.judge_get(ref)).data)


class JudgeAuditApi(APIView):
    """GET a judge's audits (newest first); POST audits it now on `dataset_version`'s test split
    or, with `events: true`, on the stored preference events."""

    class AuditInputSerializer(serializers.Serializer):
        dataset_version = serializers.CharField(required=False, allow_blank=True, default="")
        events = serializers.BooleanField(required=False, default=False)
        limit = serializers.IntegerField(required=False, min_value=1, max_value=20000)
        seed = serializers.IntegerField(required=False, default=0, min_value=0)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if bool(attrs["dataset_version"]) == bool(attrs["events"]):
                raise serializers.ValidationError(
                    {"dataset_version": "give a dataset version or events: true (one of them)"}
                )
            return attrs

    def get_permissions(self) -> list[Any]:
        return [_PeopleRead()] if self.request.method == "GET" else [CanPublish()]

    @extend_schema(responses={200: AuditOutputSerializer(many=True)}, tags=["judges"])
    def get(self, request: Request, ref: str) -> Response:
        judge = selectors.judge_get(ref)
        return Response(AuditOutputSerializer(selectors.audit_list(judge)[:50], many=True).data)

    @extend_schema(
        request=AuditInputSerializer,
        responses={201: AuditOutputSerializer, **_errors(400, 403, 404, 502)},
        tags=["judges"],
    )
    def post(self, request: Request, ref: str) -> Response:
        judge = selectors.judge_get(ref)
        data = self.AuditInputSerializer(data=_body(request))
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            if values["dataset_version"]:
                version = selectors.dataset_version_get(values["dataset_version"])
                labelled = pair_sources.dataset_pairs(version, seed=values["seed"])
                source = f"dataset v{version.pk} (test split)"
            else:
                labelled = pair_sources.event_pairs(seed=values["seed"])
                source = "preference events"
        except pair_sources.PairsError as exc:
            field = "dataset_version" if values["dataset_version"] else "events"
            raise services._invalid({field: str(exc)}) from exc
        if values.get("limit"):
            labelled = labelled[: values["limit"]]
        audit = services.judge_audit(judge=judge, pairs=labelled, source=source)
        return Response(AuditOutputSerializer(audit).data, status=status.HTTP_201_CREATED)


class GateListApi(APIView):
    """GET the gate runs (newest first); POST queues one on the `training` queue (202)."""

    class GateInputSerializer(serializers.Serializer):
        candidate = serializers.CharField(help_text="Checkpoint name or id.")
        against = serializers.CharField(help_text="An alias (e.g. production).")
        dataset_version = serializers.CharField(help_text="Whose test split holds the prompts.")
        judge = serializers.CharField(required=False, allow_blank=True, default="")
        prompts = serializers.IntegerField(required=False, min_value=1, max_value=5000)
        line = serializers.FloatField(required=False, min_value=0.0, max_value=0.999)

    def get_permissions(self) -> list[Any]:
        return [CanRead()] if self.request.method == "GET" else [CanPublish()]

    @extend_schema(responses={200: GateOutputSerializer(many=True)}, tags=["judges"])
    def get(self, request: Request) -> Response:
        gates = _gates_visible(request, selectors.gate_run_list())[:100]
        return Response(GateOutputSerializer(gates, many=True).data)

    @extend_schema(
        request=GateInputSerializer,
        responses={202: GateOutputSerializer, **_errors(400, 403, 404)},
        tags=["judges"],
    )
    def post(self, request: Request) -> Response:
        data = self.GateInputSerializer(data=_body(request))
        data.is_valid(raise_exception=True)
        values = data.validated_data
        run = services.gate_run_create(
            candidate=checkpoint_get(values["candidate"]),
            against_alias=values["against"],
            dataset_version=selectors.dataset_version_get(values["dataset_version"]),
            judge=selectors.judge_get(values["judge"]) if values["judge"] else None,
            prompts=values.get("prompts"),
            line=values.get("line"),
            user=request.user,
        )
        enqueue_gate(run.pk)
        return Response(GateOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


def enqueue_gate(run_id: int) -> None:
    from apps.judges.tasks import gate

    transaction.on_commit(lambda: gate.delay(run_id))


class GateDetailApi(APIView):
    permission_classes = [CanRead]

    @extend_schema(responses={200: GateOutputSerializer, **_errors(404)}, tags=["judges"])
    def get(self, request: Request, pk: int) -> Response:
        gate = selectors.gate_run_get(pk)
        if not _gates_visible(request, GateRun.objects.filter(pk=gate.pk)).exists():
            raise ApplicationError(f"There is no gate run {pk}.", code="not_found", status_code=404)
        return Response(GateOutputSerializer(gate).data)
