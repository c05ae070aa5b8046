"""The datasets REST API (under /api/v1/). Thin: validate, call one service or selector, serialize.

Authentication: reads take a session of any role (viewer, curator, admin) or a source's secret
key (`sk-…`), so a training box can fetch a version with a key. A key reads only its own
source's data: a version (its files, stats, manifest, compare) whose events all came from the
key's source, and recipes whose filters select that source alone; anything else answers 404,
as if it did not exist, and lists leave it out. Eval sets belong to no source: sessions only.
Writes take a session whose user holds the permission: a curator creates and changes recipes,
uploads eval sets and builds versions; deleting a recipe is an admin's
(`datasets.delete_recipe`)."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ApplicationError
from apps.core.ids import parse_id
from apps.core.openapi import cursor_page_of, results_of
from apps.core.parsers import OrjsonParser
from apps.datasets import selectors
from apps.datasets.mining import RULES
from apps.datasets.models import KINDS, RECIPE_OPTIONS, DatasetVersion, EvalSet, Recipe
from apps.datasets.services import (
    dataset_version_create,
    eval_set_create,
    recipe_create,
    recipe_delete,
    recipe_update,
)
from apps.sources.models import ApiKey, Source

FILE_NAMES = {
    "train.jsonl": ("train", "jsonl"),
    "test.jsonl": ("test", "jsonl"),
    "train.parquet": ("train", "parquet"),
    "test.parquet": ("test", "parquet"),
    "manifest.jsonl": ("manifest", None),
    "stats.json": ("stats", None),
}
CONTENT_TYPES = {
    "jsonl": "application/jsonl",
    "parquet": "application/vnd.apache.parquet",
    "json": "application/json",
}


class CanReadDatasets(permissions.BasePermission):
    message = "Reading datasets needs a secret key (sk-…) or a login."

    def has_permission(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, ApiKey):
            return request.auth.kind == ApiKey.Kind.SECRET
        user = request.user
        return bool(
            user and user.is_authenticated and user.has_perm("datasets.view_datasetversion")
        )


def _needs(perm: str, *, keys_read: bool = True) -> type[permissions.BasePermission]:
    class _Perm(permissions.BasePermission):
        message = f"This needs a login with the permission {perm} (curators have it)."

        def has_permission(self, request: Request, view: Any) -> bool:
            if request.method in permissions.SAFE_METHODS:
                if not keys_read and isinstance(request.auth, ApiKey):
                    return False
                return CanReadDatasets().has_permission(request, view)
            user = request.user
            return bool(
                not isinstance(request.auth, ApiKey)
                and user
                and user.is_authenticated
                and user.has_perm(perm)
            )

    return _Perm


def _validation(exc: ValidationError) -> ApplicationError:
    fields = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
    return ApplicationError("The request is invalid; see fields.", fields=fields)


class RecipeOutputSerializer(serializers.ModelSerializer):
    decontaminate = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    versions = serializers.SerializerMethodField()

    class Meta:
        model = Recipe
        fields = [
            "id",
            "name",
            *RECIPE_OPTIONS,
            "adhoc",
            "created_at",
            "versions",
        ]

    def get_versions(self, recipe: Recipe) -> str:
        return f"/api/v1/dataset-versions?recipe={recipe.pk}"


class RecipeInputSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    kind = serializers.ChoiceField(choices=KINDS)
    filters = serializers.DictField(
        required=False,
        help_text="The inbox's filters (source, model, type, rating, status, tags, since, until, q…).",
    )
    min_trust = serializers.FloatField(required=False, min_value=0, max_value=1)
    curated_only = serializers.BooleanField(required=False)
    pair_rules = serializers.DictField(
        child=serializers.BooleanField(),
        required=False,
        help_text=f"Booleans for {', '.join(RULES)} (all on by default).",
    )
    dedup_exact = serializers.BooleanField(required=False)
    dedup_near = serializers.BooleanField(required=False)
    near_threshold = serializers.FloatField(required=False)
    decontaminate = serializers.SlugRelatedField(
        slug_field="name",
        queryset=EvalSet.objects.all(),
        required=False,
        allow_null=True,
        help_text="An eval set's name.",
    )
    test_fraction = serializers.FloatField(required=False, min_value=0, max_value=0.99)
    max_rows = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    kto_desirable_weight = serializers.FloatField(required=False, allow_null=True)
    kto_undesirable_weight = serializers.FloatField(required=False, allow_null=True)
    seed = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)

    def validate_name(self, value: str) -> str:
        existing = Recipe.objects.filter(name=value)
        if self.instance is not None:
            existing = existing.exclude(pk=self.instance.pk)
        if existing.exists():
            raise serializers.ValidationError("A recipe with this name exists.")
        return value


class VersionOutputSerializer(serializers.ModelSerializer):
    recipe = serializers.CharField(source="recipe.name")
    hash = serializers.CharField(source="content_hash")
    files = serializers.SerializerMethodField(help_text="Download URLs, by split and format.")

    class Meta:
        model = DatasetVersion
        fields = [
            "id",
            "recipe",
            "kind",
            "status",
            "progress",
            "message",
            "error",
            "hash",
            "rows",
            "forgotten_raters",
            "created_at",
            "started_at",
            "finished_at",
            "files",
        ]

    def get_files(self, version: DatasetVersion) -> dict[str, str]:
        if version.status != DatasetVersion.Status.SUCCEEDED:
            return {}
        return {name: f"/api/v1/dataset-versions/{version.pk}/files/{name}" for name in FILE_NAMES}


class VersionDetailOutputSerializer(VersionOutputSerializer):
    class Meta(VersionOutputSerializer.Meta):
        fields = [*VersionOutputSerializer.Meta.fields, "recipe_snapshot", "stats"]


class EvalSetOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = EvalSet
        fields = ["id", "name", "prompts", "file_name", "digest", "created_at"]


class _NewestFirst(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500


def _key_source(request: Request) -> Source | None:
    """The source whose key made the request, or None for a session."""
    return request.auth.source if isinstance(request.auth, ApiKey) else None


def _recipes(request: Request) -> QuerySet[Recipe]:
    source = _key_source(request)
    return selectors.recipes() if source is None else selectors.recipes_readable_by(source=source)


def _versions(request: Request) -> QuerySet[DatasetVersion]:
    source = _key_source(request)
    return selectors.versions() if source is None else selectors.versions_readable_by(source=source)


def _recipe(request: Request, recipe_id: int) -> Recipe:
    recipe = _recipes(request).filter(pk=recipe_id).first()
    if recipe is None:
        raise NotFound("No such recipe.")
    return recipe


def _version(request: Request, version_id: int) -> DatasetVersion:
    version = _versions(request).filter(pk=version_id).first()
    if version is None:
        raise NotFound("No such dataset version.")
    return version


class RecipeListApi(APIView):
    permission_classes = [_needs("datasets.add_recipe")]
    parser_classes = [OrjsonParser]

    @extend_schema(
        operation_id="v1_recipes_list",
        responses=results_of(RecipeOutputSerializer, "RecipeList"),
        tags=["datasets"],
    )
    def get(self, request: Request) -> Response:
        return Response({"results": RecipeOutputSerializer(_recipes(request), many=True).data})

    @extend_schema(
        request=RecipeInputSerializer, responses={201: RecipeOutputSerializer}, tags=["datasets"]
    )
    def post(self, request: Request) -> Response:
        data = RecipeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            recipe = recipe_create(user=request.user, **data.validated_data)
        except ValidationError as exc:
            raise _validation(exc) from exc
        return Response(RecipeOutputSerializer(recipe).data, status=status.HTTP_201_CREATED)


class RecipeDetailApi(APIView):
    parser_classes = [OrjsonParser]

    def get_permissions(self) -> list[permissions.BasePermission]:
        perm = (
            "datasets.delete_recipe"
            if self.request.method == "DELETE"
            else "datasets.change_recipe"
        )
        return [_needs(perm)()]

    @extend_schema(responses=RecipeOutputSerializer, tags=["datasets"])
    def get(self, request: Request, recipe_id: int) -> Response:
        return Response(RecipeOutputSerializer(_recipe(request, recipe_id)).data)

    @extend_schema(
        request=RecipeInputSerializer, responses=RecipeOutputSerializer, tags=["datasets"]
    )
    def patch(self, request: Request, recipe_id: int) -> Response:
        recipe = _recipe(request, recipe_id)
        data = RecipeInputSerializer(recipe, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        try:
            recipe = recipe_update(recipe=recipe, **data.validated_data)
        except ValidationError as exc:
            raise _validation(exc) from exc
        return Response(RecipeOutputSerializer(recipe).data)

    @extend_schema(responses={204: None}, tags=["datasets"])
    def delete(self, request: Request, recipe_id: int) -> Response:
        try:
            recipe_delete(recipe=_recipe(request, recipe_id))
        except ValidationError as exc:
            raise ApplicationError(
                exc.message_dict["recipe"][0], code="conflict", status_code=409
            ) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class RecipeBuildApi(APIView):
    permission_classes = [_needs("datasets.add_datasetversion")]

    @extend_schema(
        request=None,
        responses={202: VersionOutputSerializer},
        tags=["datasets"],
        description="Queue a build on the `datasets` queue; poll the version for progress.",
    )
    def post(self, request: Request, recipe_id: int) -> Response:
        version = dataset_version_create(recipe=_recipe(request, recipe_id), user=request.user)
        version.refresh_from_db()  # an eager worker (tests, embedded) may have built it already
        return Response(
            VersionOutputSerializer(version).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": f"/api/v1/dataset-versions/{version.pk}"},
        )


class EvalSetListApi(APIView):
    permission_classes = [_needs("datasets.add_evalset", keys_read=False)]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="v1_eval_sets_list",
        responses=results_of(EvalSetOutputSerializer, "EvalSetList"),
        tags=["datasets"],
    )
    def get(self, request: Request) -> Response:
        return Response({"results": EvalSetOutputSerializer(selectors.eval_sets(), many=True).data})

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "file": {"type": "string", "format": "binary"},
                },
            }
        },
        responses={201: EvalSetOutputSerializer},
        tags=["datasets"],
        description="Upload an evaluation set: JSONL (one prompt a line: a string, {prompt}, {messages}, "
        "{question}…) or a JSON array. Its prompts are kept out of every recipe that names it.",
    )
    def post(self, request: Request) -> Response:
        name = (request.data.get("name") or "").strip()
        upload = request.FILES.get("file")
        errors = {}
        if not re.fullmatch(r"[-a-zA-Z0-9_]{1,100}", name):
            errors["name"] = ["Give a name of letters, digits, - and _ (at most 100)."]
        elif EvalSet.objects.filter(name=name).exists():
            errors["name"] = ["An eval set with this name exists."]
        if upload is None:
            errors["file"] = ["Attach the file (multipart field 'file')."]
        if errors:
            raise ApplicationError("The request is invalid; see fields.", fields=errors)
        try:
            eval_set = eval_set_create(
                name=name, content=upload.read(), file_name=upload.name, user=request.user
            )
        except ValidationError as exc:
            raise _validation(exc) from exc
        return Response(EvalSetOutputSerializer(eval_set).data, status=status.HTTP_201_CREATED)


class VersionListApi(APIView):
    permission_classes = [CanReadDatasets]

    @extend_schema(
        parameters=[OpenApiParameter("recipe", int, description="Only this recipe's versions.")],
        operation_id="v1_dataset_versions_list",
        responses=cursor_page_of(VersionOutputSerializer, "DatasetVersionPage"),
        tags=["datasets"],
    )
    def get(self, request: Request) -> Response:
        qs = _versions(request)
        recipe = request.query_params.get("recipe")
        if recipe:
            recipe_pk = parse_id(recipe)
            if recipe_pk is None:
                raise ApplicationError(
                    "The request is invalid; see fields.", fields={"recipe": ["Give a recipe id."]}
                )
            qs = qs.filter(recipe_id=recipe_pk)
        paginator = _NewestFirst()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(VersionOutputSerializer(page, many=True).data)


class VersionDetailApi(APIView):
    permission_classes = [CanReadDatasets]

    @extend_schema(responses=VersionDetailOutputSerializer, tags=["datasets"])
    def get(self, request: Request, version_id: int) -> Response:
        return Response(VersionDetailOutputSerializer(_version(request, version_id)).data)


class VersionFileApi(APIView):
    permission_classes = [CanReadDatasets]

    @extend_schema(
        responses={(200, "application/octet-stream"): bytes},
        tags=["datasets"],
        description="train.jsonl, test.jsonl, train.parquet, test.parquet, manifest.jsonl, stats.json",
    )
    def get(self, request: Request, version_id: int, name: str) -> FileResponse:
        version = _version(request, version_id)
        if name not in FILE_NAMES:
            raise NotFound(f"No file {name!r}; there are {', '.join(FILE_NAMES)}.")
        if version.status != DatasetVersion.Status.SUCCEEDED:
            raise ApplicationError(
                f"The version is {version.status}; its files exist once it succeeded.",
                code="conflict",
                status_code=409,
            )
        key, fmt = FILE_NAMES[name]
        path = (
            version.file_path(key, fmt) if fmt else selectors.artifact_path(version.files.get(key))
        )
        if path is None or not path.exists():
            raise NotFound("The file is missing from the artifact store.")
        ext = name.rsplit(".", 1)[1]
        response = FileResponse(
            open(path, "rb"),
            as_attachment=True,  # noqa: SIM115 (FileResponse closes it)
            filename=f"{version.recipe.name}-v{version.pk}-{name}",
            content_type=CONTENT_TYPES[ext],
        )
        return response


class VersionCompareApi(APIView):
    permission_classes = [CanReadDatasets]

    @extend_schema(
        parameters=[OpenApiParameter("with", int, required=True, description="The other version.")],
        tags=["datasets"],
        responses={200: dict},
        description="Rows (by content hash) that `with` adds to this version and removes from it.",
    )
    def get(self, request: Request, version_id: int) -> Response:
        version = _version(request, version_id)
        other_id = request.query_params.get("with", "")
        other_pk = parse_id(other_id)
        if other_pk is None:
            raise ApplicationError(
                "The request is invalid; see fields.",
                fields={"with": ["Give the other version's id."]},
            )
        other = _version(request, other_pk)
        for v in (version, other):
            if v.status != DatasetVersion.Status.SUCCEEDED:
                raise ApplicationError(
                    f"Version {v.pk} is {v.status}; compare needs built versions.",
                    code="conflict",
                    status_code=409,
                )
        return Response(selectors.versions_compare(a=version, b=other).as_dict())
