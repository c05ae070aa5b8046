"""The registry REST API: checkpoints (list, detail, publish, retire), aliases (list, detail,
set, rollback), base models, and the serving manifest. Thin: validate, call one service or
selector, serialize. Reads take a login with a role or a secret key (a key is not told which
other source's dataset trained a checkpoint); writes an admin's login
(apps/registry/permissions.py)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ApiErrorSerializer, ApplicationError
from apps.datasets.selectors import versions_readable_by
from apps.registry import selectors, services
from apps.registry.models import Alias, AliasMove, BaseModel, Checkpoint
from apps.registry.permissions import CanPublish, CanRead
from apps.sources.models import ApiKey


class BaseModelOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = BaseModel
        fields = ["id", "name", "model_id", "description", "is_default", "created_at"]


class CheckpointOutputSerializer(serializers.ModelSerializer):
    base_model = serializers.CharField(source="base_model.model_id", help_text="HF id or path.")
    base_model_name = serializers.CharField(source="base_model.name")
    aliases = serializers.SerializerMethodField()
    lineage = serializers.SerializerMethodField(help_text="run → dataset version → recipe.")
    artifact_path = serializers.SerializerMethodField(help_text="What a serving engine loads.")

    class Meta:
        model = Checkpoint
        fields = [
            "id",
            "name",
            "kind",
            "status",
            "base_model",
            "base_model_name",
            "method",
            "run",
            "dataset_version",
            "local_path",
            "artifact_uri",
            "artifact_path",
            "sha256",
            "metrics",
            "aliases",
            "lineage",
            "created_at",
            "published_at",
        ]

    def to_representation(self, checkpoint: Checkpoint) -> dict[str, Any]:
        data = super().to_representation(checkpoint)
        readable = self.context.get("readable_versions")
        if readable is not None and checkpoint.dataset_version_id not in (None, *readable):
            # A key does not learn which of another source's datasets trained the checkpoint.
            hidden = {
                "run": None,
                "dataset_version": None,
                "dataset_content_hash": "",
                "recipe": None,
            }
            data["run"] = data["dataset_version"] = None
            data["lineage"] = {**data["lineage"], **hidden}
        return data

    def get_aliases(self, checkpoint: Checkpoint) -> list[str]:
        return [alias.name for alias in checkpoint.aliases.all()]

    def get_lineage(self, checkpoint: Checkpoint) -> dict[str, Any]:
        return selectors.lineage(checkpoint)

    def get_artifact_path(self, checkpoint: Checkpoint) -> str:
        return selectors.artifact_path(checkpoint)


class AliasMoveOutputSerializer(serializers.ModelSerializer):
    from_checkpoint = serializers.CharField(
        source="from_checkpoint.name", allow_null=True, default=None
    )
    to_checkpoint = serializers.CharField(source="to_checkpoint.name")
    user = serializers.CharField(source="user.get_username", allow_null=True, default=None)

    class Meta:
        model = AliasMove
        fields = [
            "id",
            "from_checkpoint",
            "to_checkpoint",
            "reason",
            "is_rollback",
            "user",
            "created_at",
        ]


class AliasOutputSerializer(serializers.ModelSerializer):
    checkpoint = serializers.CharField(source="checkpoint.name")
    rollback_to = serializers.SerializerMethodField(
        help_text="Where a rollback would move it, or null."
    )
    moves = AliasMoveOutputSerializer(many=True, help_text="Newest first.")

    class Meta:
        model = Alias
        fields = ["name", "checkpoint", "updated_at", "rollback_to", "moves"]

    def get_rollback_to(self, alias: Alias) -> str | None:
        target = services.alias_rollback_target(alias)
        return target.name if target else None


def _key_context(request: Request) -> dict[str, Any]:
    """For a source's key: the dataset versions it may read (its own source's data alone), so
    that a checkpoint's lineage names no other source's dataset."""
    if not isinstance(request.auth, ApiKey):
        return {}
    readable = versions_readable_by(source=request.auth.source).values_list("pk", flat=True)
    return {"readable_versions": set(readable)}


def _body(request: Request) -> Any:
    """The JSON body, or {} for a POST without one (`curl -X POST …/publish`)."""
    return request.data if request.META.get("CONTENT_LENGTH", "0") not in ("", "0") else {}


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(response=ApiErrorSerializer) for code in codes}


class BaseModelListApi(APIView):
    permission_classes = [CanRead]

    @extend_schema(responses={200: BaseModelOutputSerializer(many=True)}, tags=["registry"])
    def get(self, request: Request) -> Response:
        return Response(BaseModelOutputSerializer(selectors.base_model_list(), many=True).data)


class BaseModelServeApi(APIView):
    """Serve a base model without an adapter: its base checkpoint, published, optionally under
    an alias. The gateway answers with it at once."""

    permission_classes = [CanPublish]

    class ServeInputSerializer(serializers.Serializer):
        alias = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=100,
            help_text="Point this alias at the base model.",
        )

    @extend_schema(
        request=ServeInputSerializer,
        responses={200: CheckpointOutputSerializer, **_errors(400, 403, 404)},
        tags=["registry"],
    )
    def post(self, request: Request, ref: str) -> Response:
        data = self.ServeInputSerializer(data=_body(request))
        data.is_valid(raise_exception=True)
        base = selectors.base_model_find(ref)
        if base is None:
            raise ApplicationError(
                f"There is no base model {ref!r}.", code="not_found", status_code=404
            )
        checkpoint = services.base_model_serve(
            base_model=base, alias=data.validated_data.get("alias", ""), user=request.user
        )
        return Response(CheckpointOutputSerializer(selectors.checkpoint_get(checkpoint.pk)).data)


class CheckpointListApi(APIView):
    permission_classes = [CanRead]

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=Checkpoint.Status.choices, required=False)

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: CheckpointOutputSerializer(many=True), **_errors(400)},
        tags=["registry"],
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rows = selectors.checkpoint_list(status=filters.validated_data.get("status", ""))[:500]
        return Response(
            CheckpointOutputSerializer(rows, many=True, context=_key_context(request)).data
        )


class CheckpointDetailApi(APIView):
    permission_classes = [CanRead]

    @extend_schema(responses={200: CheckpointOutputSerializer, **_errors(404)}, tags=["registry"])
    def get(self, request: Request, ref: str) -> Response:
        checkpoint = selectors.checkpoint_get(ref)
        return Response(CheckpointOutputSerializer(checkpoint, context=_key_context(request)).data)


class CheckpointPublishApi(APIView):
    permission_classes = [CanPublish]

    class PublishInputSerializer(serializers.Serializer):
        alias = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=100,
            help_text="Point this alias at it once published.",
        )
        reason = serializers.CharField(required=False, allow_blank=True, max_length=500)

    @extend_schema(
        request=PublishInputSerializer,
        responses={200: CheckpointOutputSerializer, **_errors(400, 403, 404, 502)},
        tags=["registry"],
    )
    def post(self, request: Request, ref: str) -> Response:
        data = self.PublishInputSerializer(data=_body(request))
        data.is_valid(raise_exception=True)
        checkpoint = services.checkpoint_publish(
            checkpoint=selectors.checkpoint_get(ref),
            alias=data.validated_data.get("alias", ""),
            reason=data.validated_data.get("reason", ""),
            user=request.user,
        )
        return Response(CheckpointOutputSerializer(selectors.checkpoint_get(checkpoint.pk)).data)


class CheckpointRetireApi(APIView):
    permission_classes = [CanPublish]

    @extend_schema(
        request=None,
        responses={200: CheckpointOutputSerializer, **_errors(403, 404, 409)},
        tags=["registry"],
    )
    def post(self, request: Request, ref: str) -> Response:
        checkpoint = services.checkpoint_retire(
            checkpoint=selectors.checkpoint_get(ref), user=request.user
        )
        return Response(CheckpointOutputSerializer(selectors.checkpoint_get(checkpoint.pk)).data)


class AliasListApi(APIView):
    permission_classes = [CanRead]

    @extend_schema(responses={200: AliasOutputSerializer(many=True)}, tags=["registry"])
    def get(self, request: Request) -> Response:
        return Response(AliasOutputSerializer(selectors.alias_list(), many=True).data)


class AliasDetailApi(APIView):
    """GET an alias with its history; PUT (or POST) `{"checkpoint", "reason"}` to point it."""

    class AliasSetInputSerializer(serializers.Serializer):
        checkpoint = serializers.CharField(help_text="Checkpoint name or id (must be published).")
        reason = serializers.CharField(required=False, allow_blank=True, max_length=500)

    def get_permissions(self) -> list[Any]:
        return [CanRead()] if self.request.method == "GET" else [CanPublish()]

    @extend_schema(responses={200: AliasOutputSerializer, **_errors(404)}, tags=["registry"])
    def get(self, request: Request, name: str) -> Response:
        return Response(AliasOutputSerializer(selectors.alias_get(name)).data)

    @extend_schema(
        request=AliasSetInputSerializer,
        responses={200: AliasOutputSerializer, **_errors(400, 403)},
        tags=["registry"],
    )
    def put(self, request: Request, name: str) -> Response:
        data = self.AliasSetInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.alias_set(
            name=name,
            checkpoint=selectors.checkpoint_get(data.validated_data["checkpoint"]),
            user=request.user,
            reason=data.validated_data.get("reason", ""),
        )
        return Response(AliasOutputSerializer(selectors.alias_get(name)).data)

    @extend_schema(
        request=AliasSetInputSerializer,
        responses={200: AliasOutputSerializer, **_errors(400, 403)},
        tags=["registry"],
    )
    def post(self, request: Request, name: str) -> Response:
        return self.put(request, name)


class AliasRollbackApi(APIView):
    permission_classes = [CanPublish]

    @extend_schema(
        request=None,
        responses={200: AliasOutputSerializer, **_errors(400, 403, 404)},
        tags=["registry"],
    )
    def post(self, request: Request, name: str) -> Response:
        services.alias_rollback(name=name, user=request.user)
        return Response(AliasOutputSerializer(selectors.alias_get(name)).data)


class ServingManifestOutputSerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    adapters = serializers.ListField(
        child=serializers.DictField(),
        help_text="Published checkpoints: name, kind, base_model, method, uri, path, sha256, published_at, aliases.",
    )
    aliases = serializers.DictField(
        child=serializers.CharField(), help_text="{alias: checkpoint name}."
    )


class ServingManifestApi(APIView):
    permission_classes = [CanRead]

    @extend_schema(responses={200: ServingManifestOutputSerializer}, tags=["registry"])
    def get(self, request: Request) -> Response:
        return Response(selectors.serving_manifest())
