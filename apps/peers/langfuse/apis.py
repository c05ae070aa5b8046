"""The Langfuse-compatible REST endpoints, mounted at /api/public/ (Langfuse's own prefix), so a
Langfuse client pointed at Sinkhole's base URL works unchanged. Request and response bodies
follow Langfuse's public API; errors use Sinkhole's one error shape."""

from __future__ import annotations

import math
import uuid
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.http.request import RawPostDataException
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ApplicationError
from apps.core.parsers import parse_json_body
from apps.peers import selectors
from apps.peers.langfuse import otlp
from apps.peers.langfuse.auth import IsLangfuseClient, LangfuseBasicAuthentication
from apps.peers.langfuse.services import (
    ScoreInput,
    langfuse_ingestion,
    langfuse_score_retract,
    langfuse_scores_create,
)
from apps.peers.models import LangfuseScore
from apps.sources import ratelimit
from apps.sources.models import ApiKey

TAGS = ["langfuse-compatible"]


class _LangfuseView(APIView):
    authentication_classes = [LangfuseBasicAuthentication]
    permission_classes = [IsLangfuseClient]


def _raw_body(request: Request) -> bytes:
    """The body's bytes, within the ingest size limit (413 over it)."""
    limit = settings.INGEST_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    try:
        body = b"" if declared > limit else request._request.body
    except RawPostDataException as exc:
        raise ParseError("The request body was already read.") from exc
    if declared > limit or len(body) > limit:
        raise ApplicationError(
            f"The request body is over {limit // (1024 * 1024)} MB; send smaller batches.",
            code="payload_too_large",
            status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    return body


def _body(request: Request) -> Any:
    """The JSON body, within the ingest size limit (413 over it)."""
    return parse_json_body(_raw_body(request))


def _charge(key: ApiKey, cost: int) -> None:
    """Count COST events against the key's per-minute limit; 429 (nothing stored) over it."""
    limit = key.source.rate_limit_per_minute
    verdict = ratelimit.check_key(key_id=key.pk, limit=limit, cost=cost)
    if not verdict.allowed:
        raise ApplicationError(
            f"This key is over its limit of {limit} events per minute; nothing was stored.",
            code="rate_limited",
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(verdict.retry_after)},
        )


def _client_ip(request: Request) -> str:
    return request.META.get("REMOTE_ADDR", "")


# --- serializers (documentation and output) -------------------------------------------------


class ScoreCreateInputSerializer(serializers.Serializer):
    id = serializers.CharField(
        required=False,
        help_text="Your score id; sending it again is a no-op, a changed value with it an update.",
    )
    traceId = serializers.CharField(
        required=False, help_text="The trace judged (or give sessionId)."
    )
    observationId = serializers.CharField(required=False)
    sessionId = serializers.CharField(required=False)
    name = serializers.CharField(help_text="e.g. user-feedback")
    value = serializers.JSONField(
        help_text="A number (NUMERIC, BOOLEAN 1/0) or a string (CATEGORICAL)."
    )
    dataType = serializers.ChoiceField(
        choices=["NUMERIC", "BOOLEAN", "CATEGORICAL"], required=False
    )
    comment = serializers.CharField(required=False)
    metadata = serializers.JSONField(
        required=False,
        help_text='Kept with the event; {"min", "max"} give a NUMERIC score\'s scale.',
    )
    environment = serializers.CharField(required=False)
    configId = serializers.CharField(required=False)


class ScoreCreateOutputSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The score's id (yours, or one the server made).")


class _ScoreBatchErrorSerializer(serializers.Serializer):
    id = serializers.CharField(allow_null=True)
    message = serializers.CharField()
    error = serializers.JSONField()


class ScoreBatchAcceptedSerializer(serializers.Serializer):
    message = serializers.CharField(help_text='"Accepted": every score of the array was stored.')


class ScoreBatchResultsSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    errors = _ScoreBatchErrorSerializer(many=True)


class ScoreOutputSerializer(serializers.Serializer):
    """A score as Langfuse's GET endpoints describe it, plus where it went in Sinkhole."""

    id = serializers.CharField(source="score_id")
    traceId = serializers.CharField(source="trace_id", allow_null=True)
    observationId = serializers.CharField(source="observation_id", allow_null=True)
    sessionId = serializers.CharField(source="session_id", allow_null=True)
    name = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    stringValue = serializers.CharField(source="string_value", allow_null=True)
    dataType = serializers.CharField(source="data_type")
    comment = serializers.CharField(allow_null=True)
    source = serializers.SerializerMethodField()
    environment = serializers.CharField()
    timestamp = serializers.DateTimeField(source="updated_at")
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")
    sinkhole = serializers.SerializerMethodField()

    def get_source(self, score: LangfuseScore) -> str:
        return "API"

    def get_sinkhole(self, score: LangfuseScore) -> dict[str, Any]:
        event = score.event
        return {
            "event_id": score.event_id,
            "client_id": event.client_id if event else None,
            "status": event.status if event else None,
            "revision": score.revision,
            "with_text": score.with_text,
        }

    def to_representation(self, instance: LangfuseScore) -> dict[str, Any]:
        data = super().to_representation(instance)
        for key in ("traceId", "observationId", "sessionId", "stringValue", "comment"):
            data[key] = data[key] or None
        data["environment"] = data["environment"] or "default"
        return data


class _PageMetaSerializer(serializers.Serializer):
    page = serializers.IntegerField()
    limit = serializers.IntegerField()
    totalItems = serializers.IntegerField()
    totalPages = serializers.IntegerField()


class ScorePageOutputSerializer(serializers.Serializer):
    data = ScoreOutputSerializer(many=True)
    meta = _PageMetaSerializer()


class ScoreListFilter(serializers.Serializer):
    traceId = serializers.CharField(required=False, max_length=200)
    observationId = serializers.CharField(required=False, max_length=200)
    sessionId = serializers.CharField(required=False, max_length=200)
    name = serializers.CharField(required=False, max_length=200)
    dataType = serializers.ChoiceField(choices=LangfuseScore.DataType.choices, required=False)
    # Bounded so that the page's offset fits PostgreSQL's bigint (a 500 beyond it).
    page = serializers.IntegerField(required=False, min_value=1, max_value=10**9, default=1)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, default=50)


class IngestionInputSerializer(serializers.Serializer):
    batch = serializers.ListField(
        child=serializers.JSONField(),
        help_text="Envelopes {id, type, timestamp, body}: score-create becomes a rating; trace-create and generation-create/-update give scores their text; others are acknowledged.",
    )
    metadata = serializers.JSONField(required=False)


class _IngestionSuccessSerializer(serializers.Serializer):
    id = serializers.CharField()
    status = serializers.IntegerField()


class _IngestionErrorSerializer(serializers.Serializer):
    id = serializers.CharField()
    status = serializers.IntegerField()
    message = serializers.CharField()
    error = serializers.JSONField()


class IngestionOutputSerializer(serializers.Serializer):
    successes = _IngestionSuccessSerializer(many=True)
    errors = _IngestionErrorSerializer(many=True)


class _OrganizationSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()


class _ProjectSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    organization = _OrganizationSerializer(
        help_text="The SDKs 3.x and later require it; Sinkhole names itself."
    )
    metadata = serializers.DictField()


class ProjectsOutputSerializer(serializers.Serializer):
    data = _ProjectSerializer(many=True)


class HealthOutputSerializer(serializers.Serializer):
    status = serializers.CharField()
    version = serializers.CharField()


class _ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()), required=False
    )


class ErrorOutputSerializer(serializers.Serializer):
    error = _ErrorBodySerializer()


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorOutputSerializer, description=description)


_AUTH_ERRORS = {
    401: _error("No Basic credentials, an unknown or revoked key, or keys of two sources.")
}


# --- views ----------------------------------------------------------------------------------


class ScoresApi(_LangfuseView):
    """POST creates a score, or each score of a JSON array (Langfuse `POST /api/public/scores`;
    the SDK 5.x sends arrays); GET lists them."""

    @extend_schema(
        operation_id="langfuse_score_create",
        summary="Langfuse-compatible: create a score, or an array of them (each a rating event)",
        tags=TAGS,
        request=ScoreCreateInputSerializer,
        responses={
            200: ScoreCreateOutputSerializer,
            202: OpenApiResponse(
                ScoreBatchAcceptedSerializer, description="An array: every score stored."
            ),
            207: OpenApiResponse(
                ScoreBatchResultsSerializer,
                description="An array with invalid scores: how many were stored, and why the "
                "others were not (Langfuse's CreateScoreBatchResults).",
            ),
            400: _error("Not a valid score, or a value Sinkhole cannot read as a rating."),
            **_AUTH_ERRORS,
            413: _error("Over the body size limit."),
            429: _error("Over the key's rate limit; see Retry-After."),
        },
    )
    def post(self, request: Request) -> Response:
        key: ApiKey = request.auth
        data = _body(request)
        if isinstance(data, list):
            return self._post_array(key, data, _client_ip(request))
        _charge(key, 1)
        outcome = langfuse_scores_create(
            source=key.source,
            items=[ScoreInput(data, fallback_id=str(uuid.uuid4()))],
            client_ip=_client_ip(request),
        )[0]
        if not outcome.ok:
            raise ApplicationError(
                f"The score is invalid: {outcome.message}", fields=outcome.errors
            )
        return Response({"id": outcome.score_id}, status=status.HTTP_200_OK)

    def _post_array(self, key: ApiKey, data: list[Any], client_ip: str) -> Response:
        if not data:
            raise ApplicationError(
                "The request is invalid; see fields.", fields={"body": ["the array is empty"]}
            )
        if len(data) > settings.INGEST_MAX_BATCH_EVENTS:
            raise ApplicationError(
                f"The array has {len(data)} scores; at most {settings.INGEST_MAX_BATCH_EVENTS}.",
                code="payload_too_large",
                status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        _charge(key, len(data))
        outcomes = langfuse_scores_create(
            source=key.source,
            items=[ScoreInput(item, fallback_id=str(uuid.uuid4())) for item in data],
            client_ip=client_ip,
        )
        errors = [
            {"id": outcome.score_id, "message": outcome.message, "error": outcome.errors}
            for outcome in outcomes
            if not outcome.ok
        ]
        if not errors:
            return Response({"message": "Accepted"}, status=status.HTTP_202_ACCEPTED)
        return Response(
            {"accepted": len(outcomes) - len(errors), "rejected": len(errors), "errors": errors},
            status=status.HTTP_207_MULTI_STATUS,
        )

    @extend_schema(
        operation_id="langfuse_score_list",
        summary="Langfuse-compatible: list the source's scores (e.g. by traceId)",
        tags=TAGS,
        parameters=[
            OpenApiParameter("traceId", str),
            OpenApiParameter("observationId", str),
            OpenApiParameter("sessionId", str),
            OpenApiParameter("name", str),
            OpenApiParameter("dataType", str, enum=["NUMERIC", "BOOLEAN", "CATEGORICAL"]),
            OpenApiParameter("page", int, description="From 1."),
            OpenApiParameter("limit", int, description="At most 100; default 50."),
        ],
        responses={200: ScorePageOutputSerializer, 400: _error("A bad filter."), **_AUTH_ERRORS},
    )
    def get(self, request: Request) -> Response:
        filters = ScoreListFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        given = filters.validated_data
        qs = selectors.langfuse_scores(
            source=request.auth.source,
            trace_id=given.get("traceId"),
            observation_id=given.get("observationId"),
            session_id=given.get("sessionId"),
            name=given.get("name"),
            data_type=given.get("dataType"),
        )
        page, limit = given["page"], given["limit"]
        total = qs.count()
        rows = qs[(page - 1) * limit : page * limit]
        return Response(
            {
                "data": ScoreOutputSerializer(rows, many=True).data,
                "meta": {
                    "page": page,
                    "limit": limit,
                    "totalItems": total,
                    "totalPages": math.ceil(total / limit),
                },
            }
        )


class ScoreDetailApi(_LangfuseView):
    @extend_schema(
        operation_id="langfuse_score_detail",
        summary="Langfuse-compatible: one score by its id",
        tags=TAGS,
        responses={200: ScoreOutputSerializer, 404: _error("No such score."), **_AUTH_ERRORS},
    )
    def get(self, request: Request, score_id: str) -> Response:
        score = (
            selectors.langfuse_scores(source=request.auth.source).filter(score_id=score_id).first()
        )
        if score is None:
            raise ApplicationError(
                "No such score.", code="not_found", status_code=status.HTTP_404_NOT_FOUND
            )
        return Response(ScoreOutputSerializer(score).data)

    @extend_schema(
        operation_id="langfuse_score_delete",
        summary="Langfuse-compatible: delete (retract) a score; its events stay in the log",
        tags=TAGS,
        responses={204: None, 404: _error("No such score."), **_AUTH_ERRORS},
    )
    def delete(self, request: Request, score_id: str) -> Response:
        if not langfuse_score_retract(source=request.auth.source, score_id=score_id):
            raise ApplicationError(
                "No such score.", code="not_found", status_code=status.HTTP_404_NOT_FOUND
            )
        return Response(status=status.HTTP_204_NO_CONTENT)


class IngestionApi(_LangfuseView):
    @extend_schema(
        operation_id="langfuse_ingestion",
        summary="Langfuse-compatible: a batch of tracing events (207, one answer per event)",
        tags=TAGS,
        request=IngestionInputSerializer,
        responses={
            207: IngestionOutputSerializer,
            400: _error("Not JSON, or no `batch` list."),
            **_AUTH_ERRORS,
            413: _error("Over the body size or batch length limit."),
            429: _error("Over the key's rate limit; see Retry-After."),
        },
    )
    def post(self, request: Request) -> Response:
        key: ApiKey = request.auth
        data = _body(request)
        batch = data.get("batch") if isinstance(data, dict) else None
        if not isinstance(batch, list):
            raise ApplicationError(
                "The request is invalid; see fields.",
                fields={"batch": ["must be a list of events"]},
            )
        if len(batch) > settings.INGEST_MAX_BATCH_EVENTS:
            raise ApplicationError(
                f"The batch has {len(batch)} events; at most {settings.INGEST_MAX_BATCH_EVENTS}.",
                code="payload_too_large",
                status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        _charge(key, len(batch))
        outcome = langfuse_ingestion(source=key.source, batch=batch, client_ip=_client_ip(request))
        return Response(outcome.as_dict(), status=status.HTTP_207_MULTI_STATUS)


class ProjectsApi(_LangfuseView):
    """Langfuse clients check their keys with this call (Dify's "Save" does): the "project" is
    the source the keys belong to."""

    @extend_schema(
        operation_id="langfuse_projects",
        summary="Langfuse-compatible: the project (source) of the keys",
        tags=TAGS,
        responses={200: ProjectsOutputSerializer, **_AUTH_ERRORS},
    )
    def get(self, request: Request) -> Response:
        source = request.auth.source
        project = {
            "id": source.name,
            "name": source.name,
            "organization": {"id": "sinkhole", "name": "Sinkhole"},
            "metadata": {},
        }
        return Response({"data": [project]})


class HealthApi(APIView):
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    @extend_schema(
        operation_id="langfuse_health",
        summary="Langfuse-compatible: health",
        tags=TAGS,
        auth=[],
        responses={200: HealthOutputSerializer},
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "OK", "version": "sinkhole"})


class OtelTracesApi(_LangfuseView):
    """Langfuse's OpenTelemetry intake (the SDKs 3.x and later, LibreChat): OTLP/HTTP in
    protobuf or JSON. Sinkhole is not a tracing backend: it keeps only the texts that give scores
    their prompt and reply, the model and the user (see `otlp`)."""

    @extend_schema(
        operation_id="langfuse_otel_traces",
        summary="Langfuse-compatible: OTLP/HTTP traces (texts kept as score context)",
        tags=TAGS,
        request={
            "application/json": OpenApiTypes.OBJECT,
            "application/x-protobuf": OpenApiTypes.BINARY,
        },
        responses={
            200: OpenApiTypes.OBJECT,
            400: _error("Not an OTLP trace export in the encoding its Content-Type names."),
            **_AUTH_ERRORS,
            413: _error("Over the body size limit."),
            415: _error("Neither application/x-protobuf nor application/json."),
        },
    )
    def post(self, request: Request) -> HttpResponse:
        content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if content_type not in (otlp.PROTOBUF, "application/json"):
            raise ApplicationError(
                "OTLP/HTTP traces come as application/x-protobuf or application/json.",
                code="unsupported_media_type",
                status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            )
        try:
            body = otlp.decode_body(
                _raw_body(request), encoding=request.META.get("HTTP_CONTENT_ENCODING", "")
            )
            if content_type == otlp.PROTOBUF:
                spans = otlp.spans_from_protobuf(body)
            else:
                spans = otlp.spans_from_json(parse_json_body(body))
        except otlp.OtlpError as exc:
            raise ApplicationError(
                f"The trace export is invalid: {exc}.", fields={"body": [str(exc)]}
            ) from exc
        otlp.langfuse_otel_spans_record(source=request.auth.source, spans=spans)
        if content_type == otlp.PROTOBUF:
            # An empty ExportTraceServiceResponse: zero bytes in protobuf.
            return HttpResponse(b"", content_type=otlp.PROTOBUF)
        return HttpResponse(b"{}", content_type="application/json")
