"""The feedback REST API: ingest (one event or a batch), list, detail. Thin: parse, check
limits, call one service or selector, serialize."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http.request import RawPostDataException
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ParseError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ApiErrorSerializer, ApplicationError
from apps.core.parsers import parse_json_body
from apps.feedback import selectors, signals
from apps.feedback.models import Event
from apps.feedback.openapi import EVENT_SCHEMA_REF, INGEST_EXAMPLES
from apps.feedback.services.ingest import DUPLICATE, ERROR, feedback_ingest
from apps.sources.auth import CanIngest, CanReadFeedback
from apps.sources.models import ApiKey

# The ingest answer's `outcome` says what happened to each item; its old `status` names are kept
# for deployed clients (docs/api.md, "The ingest answer: outcome, not verdict"): `accepted` there
# means only "stored", which a reader took for the quality verdict of the same name.
OUTCOMES = {"accepted": "stored", "quarantined": "held", DUPLICATE: "duplicate", ERROR: "error"}


def outcome_of(status_name: str) -> str:
    """The unambiguous `outcome` of an item the ingest answered with STATUS_NAME."""
    return OUTCOMES.get(status_name, status_name)


class EventOutputSerializer(serializers.ModelSerializer):
    source = serializers.CharField(source="source.name")
    rater = serializers.CharField(source="rater_hash", help_text="Keyed hash of the rater id.")
    unreadable = serializers.SerializerMethodField(
        help_text="What of this event, stored before validation bounded it, cannot be read "
        "(an out-of-range timestamp shows as null occurred_at); empty for a sound event."
    )

    supersedes = serializers.IntegerField(
        source="supersedes_id",
        allow_null=True,
        read_only=True,
        help_text="The server id of the earlier event this one revises, or null.",
    )
    superseded_by = serializers.SerializerMethodField(
        help_text="The server id of the event that revises this one, or null: only an event "
        "nobody revised (the latest revision) counts in datasets and leaderboards."
    )

    def get_unreadable(self, event: Event) -> list[str]:
        return selectors.event_unreadable(event)

    def get_superseded_by(self, event: Event) -> int | None:
        return selectors.event_superseded_by(event)

    class Meta:
        model = Event
        fields = [
            "id",
            "client_id",
            "source",
            "type",
            "status",
            "model",
            "checkpoint",
            "rater",
            "consent",
            "licence",
            "redactions",
            "occurred_at",
            "received_at",
            "payload",
            "unreadable",
            "supersedes",
            "superseded_by",
        ]


class EventDetailOutputSerializer(EventOutputSerializer):
    normalized = serializers.SerializerMethodField()
    verdict = serializers.SerializerMethodField(
        help_text="The quality pipeline's current verdict (null until the quality worker judged it)."
    )

    class Meta(EventOutputSerializer.Meta):
        fields = [*EventOutputSerializer.Meta.fields, "normalized", "verdict"]

    def get_normalized(self, event: Event) -> dict[str, Any]:
        return selectors.event_normalized(event)

    def get_verdict(self, event: Event) -> dict[str, Any] | None:
        return signals.event_verdict.call(event)  # quality provides it (it builds on feedback)


class EventPageOutputSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="The next (older) page, or null.")
    previous = serializers.URLField(
        allow_null=True, help_text="The previous (newer) page, or null."
    )
    results = EventOutputSerializer(many=True)


class IngestOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(
        help_text="The server's id of the stored event (the original one for a retry)."
    )
    client_id = serializers.CharField(help_text="Your event id, or the one the server made up.")
    outcome = serializers.CharField(
        help_text="What happened to the event: `stored`, `held` (stored, held for a curator: "
        "the source holds everything for review) or `duplicate` (stored before). Not a verdict: "
        "the quality pipeline judges the event after the answer (`GET /api/v1/feedback/{id}`)."
    )
    status = serializers.CharField(
        help_text="Deprecated (kept for deployed clients): the outcome under its old names, "
        "`accepted` (= `stored`, not a verdict), `quarantined` (= `held`) or `duplicate`."
    )


class BatchItemOutputSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The item's place in the request.")
    outcome = serializers.CharField(help_text="`stored`, `held`, `duplicate` or `error`.")
    status = serializers.CharField(
        help_text="Deprecated: the outcome under its old names, `accepted` (= `stored`), "
        "`quarantined` (= `held`), `duplicate` or `error`."
    )
    id = serializers.IntegerField(required=False, help_text="Absent for an error.")
    client_id = serializers.CharField(required=False)
    code = serializers.CharField(
        required=False, help_text="For an error: `invalid` or `rate_limited`."
    )
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="For an error: messages by dotted field path, e.g. `messages.0.role`.",
    )


class BatchOutputSerializer(serializers.Serializer):
    results = BatchItemOutputSerializer(many=True)
    outcomes = serializers.DictField(
        child=serializers.IntegerField(), help_text="Items per outcome (`stored`, `held`, …)."
    )
    summary = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Deprecated: items per `status` (the outcomes under their old names).",
    )


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ApiErrorSerializer, description=description)


class _NewestFirst(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500

    def decode_cursor(self, request: Request) -> Any:
        # A mangled cursor is bad input (400), not a missing page (DRF's 404).
        try:
            return super().decode_cursor(request)
        except NotFound as exc:
            raise ApplicationError(
                "The request is invalid; see fields.",
                fields={"cursor": ["is not a cursor from this list's `next` or `previous`"]},
            ) from exc


def _client_ip(request: Request) -> str:
    return request.META.get("REMOTE_ADDR", "")


def _read_items(request: Request) -> tuple[list[Any], bool]:
    """The request's events and whether it was a batch; 413 over the size or count limits."""
    limit = settings.INGEST_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    too_big = ApplicationError(
        f"The request body is over {limit // (1024 * 1024)} MB; split the batch.",
        code="payload_too_large",
        status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )
    if declared > limit:
        raise too_big
    try:
        body = request._request.body
    except RawPostDataException as exc:
        raise ParseError("The request body was already read.") from exc
    if len(body) > limit:
        raise too_big
    data = parse_json_body(body)
    if isinstance(data, dict):
        return [data], False
    if not isinstance(data, list):
        raise ApplicationError("Send one event (a JSON object) or a batch (a JSON array of them).")
    if not data:
        raise ApplicationError("The batch is empty.")
    if len(data) > settings.INGEST_MAX_BATCH_EVENTS:
        raise ApplicationError(
            f"The batch has {len(data)} events; at most {settings.INGEST_MAX_BATCH_EVENTS} per request.",
            code="payload_too_large",
            status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    return data, True


class FeedbackApi(APIView):
    """POST ingests feedback; GET lists it."""

    def get_permissions(self) -> list[Any]:
        return [CanIngest()] if self.request.method == "POST" else [CanReadFeedback()]

    @extend_schema(
        operation_id="feedback_ingest",
        summary="Send feedback: one event, or a batch of up to 1,000",
        request={"application/json": EVENT_SCHEMA_REF},
        responses={
            201: OpenApiResponse(response=IngestOutputSerializer, description="One event stored."),
            200: OpenApiResponse(
                response=IngestOutputSerializer,
                description="One event that was already stored (a retry): status `duplicate`.",
            ),
            207: OpenApiResponse(
                response=BatchOutputSerializer,
                description="A batch: `results` holds one entry per item, in order.",
            ),
            400: _error("Not JSON, not UTF-8, or an invalid single event (see `error.fields`)."),
            401: _error("Missing, unknown or revoked key."),
            403: _error("A publishable key from an origin the source does not allow."),
            413: _error("Over 5 MB or over 1,000 events."),
            429: _error(
                "Over the key's or the rater's rate limit, or (a batch, code `backlog`) the "
                "workers are too far behind; see Retry-After. Nothing stored."
            ),
        },
        examples=INGEST_EXAMPLES,
    )
    def post(self, request: Request) -> Response:
        key: ApiKey = request.auth
        items, is_batch = _read_items(request)
        results = feedback_ingest(
            source=key.source, items=items, client_ip=_client_ip(request), key=key, batch=is_batch
        )
        retry_after = max((r.retry_after for r in results), default=0)
        headers = {"Retry-After": str(retry_after)} if retry_after else {}
        if is_batch:
            summary: dict[str, int] = {}
            outcomes: dict[str, int] = {}
            for result in results:
                summary[result.status] = summary.get(result.status, 0) + 1
                outcome = outcome_of(result.status)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            return Response(
                {
                    "results": [{"outcome": outcome_of(r.status), **r.as_dict()} for r in results],
                    "outcomes": outcomes,
                    "summary": summary,
                },
                status=status.HTTP_207_MULTI_STATUS,
                headers=headers,
            )
        result = results[0]
        if result.status == ERROR:
            if result.code == "rate_limited":
                raise ApplicationError(
                    "This rater is over the source's rate limit; nothing was stored.",
                    code="rate_limited",
                    status_code=status.HTTP_429_TOO_MANY_REQUESTS,
                    fields=result.errors,
                    headers=headers,
                )
            raise ApplicationError("The event is invalid; see fields.", fields=result.errors)
        code = status.HTTP_200_OK if result.status == DUPLICATE else status.HTTP_201_CREATED
        return Response(
            {
                "id": result.id,
                "client_id": result.client_id,
                "outcome": outcome_of(result.status),
                "status": result.status,
            },
            status=code,
        )

    @extend_schema(
        operation_id="feedback_list",
        summary="List feedback, newest first (secret key: its source; curators: every source)",
        parameters=[
            OpenApiParameter(
                "source", str, description="Source name (curators only; a key sees its own)."
            ),
            OpenApiParameter("type", str, enum=["rating", "preference", "ranking", "edit"]),
            OpenApiParameter("status", str, enum=["accepted", "quarantined"]),
            OpenApiParameter("model", str),
            OpenApiParameter("checkpoint", str),
            OpenApiParameter("rater", str, description="The rater id as your front-end sent it."),
            OpenApiParameter("since", str, description="ISO 8601; received at or after."),
            OpenApiParameter("until", str, description="ISO 8601; received before."),
            OpenApiParameter("limit", int, description="Page size, at most 500."),
            OpenApiParameter("cursor", str, description="From the previous page's `next`."),
        ],
        responses={
            200: EventPageOutputSerializer,
            400: _error("A bad filter value (see `error.fields`)."),
            401: _error("No key and no login."),
            403: _error("A publishable key, or a login without the view permission."),
        },
    )
    def get(self, request: Request) -> Response:
        filters = FeedbackListFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        own_source = request.auth.source if isinstance(request.auth, ApiKey) else None
        if (
            own_source is None
            and filters.validated_data.get("rater")
            and not filters.validated_data.get("source")
        ):
            # Rater ids are hashed per source: without one there is nothing to look them up by.
            raise ApplicationError(
                "The request is invalid; see fields.",
                fields={"rater": ["needs 'source': rater ids are pseudonymous per source"]},
            )
        qs = selectors.event_list(
            source=own_source,
            source_name=None if own_source else filters.validated_data.get("source"),
            **{k: v for k, v in filters.validated_data.items() if k != "source"},
        )
        paginator = _NewestFirst()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(EventOutputSerializer(page, many=True).data)


class FeedbackListFilter(serializers.Serializer):
    source = serializers.CharField(required=False, max_length=100)
    type = serializers.ChoiceField(choices=Event.Type.choices, required=False)
    status = serializers.ChoiceField(choices=Event.Status.choices, required=False)
    model = serializers.CharField(required=False, max_length=200)
    checkpoint = serializers.CharField(required=False, max_length=200)
    rater = serializers.CharField(required=False, max_length=200)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class FeedbackDetailApi(APIView):
    permission_classes = [CanReadFeedback]

    @extend_schema(
        operation_id="feedback_detail",
        summary="One event: as stored, and its normalized rows",
        responses={
            200: EventDetailOutputSerializer,
            401: _error("No key and no login."),
            403: _error("A publishable key, or a login without the view permission."),
            404: _error("No such event in your scope."),
        },
    )
    def get(self, request: Request, event_id: int) -> Response:
        qs = selectors.event_detail_queryset()
        if isinstance(request.auth, ApiKey):
            qs = qs.filter(source=request.auth.source)
        event = qs.filter(pk=event_id).first()
        if event is None:
            raise ApplicationError(
                "No such event.", code="not_found", status_code=status.HTTP_404_NOT_FOUND
            )
        return Response(EventDetailOutputSerializer(event).data)
