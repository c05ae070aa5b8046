"""The curation REST API (under /api/v1/): decisions on one event, bulk decisions, undo, and the
inbox's capped count.

Authentication: a curator's Django session (with the CSRF token, as the inbox page sends it).
Source API keys (`sk-…`) cannot decide: a key belongs to a front-end, not to a person, and every
decision records who made it. Reads (the decision list, the count) need a logged-in user with a
role (apps/curation/roles.py)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ApiErrorSerializer
from apps.core.ids import parse_id
from apps.curation import selectors, services
from apps.curation.filters import clean_filters
from apps.curation.models import Decision
from apps.curation.roles import has_role
from apps.feedback.models import Event


class IsPerson(permissions.BasePermission):
    message = "Log in (a Django session) with a role: curation is done by people, not API keys."

    def has_permission(self, request: Request, view: Any) -> bool:
        return has_role(request.user)


class IsCurator(IsPerson):
    message = "Deciding needs the curator or admin role."

    def has_permission(self, request: Request, view: Any) -> bool:
        return super().has_permission(request, view) and request.user.has_perm(
            "curation.add_decision"
        )


class DecisionOutputSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", default=None, allow_null=True)
    undone_by = serializers.CharField(source="undone_by.username", default=None, allow_null=True)
    verdict_status = serializers.CharField(source="verdict.status", default=None, allow_null=True)

    class Meta:
        model = Decision
        fields = [
            "id", "event", "action", "reason", "tag", "gold_response", "position", "note",
            "batch", "user", "created_at", "undone_at", "undone_by", "verdict_status",
        ]  # fmt: skip


class DecisionInputSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=Decision.Action.values)
    reason = serializers.CharField(required=False, allow_blank=True, default="")
    tag = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    text = serializers.CharField(
        required=False, allow_blank=True, default="", trim_whitespace=False,
        help_text="For gold: the better reply.",
    )  # fmt: skip
    position = serializers.IntegerField(required=False, default=0, min_value=0, max_value=1000)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


def _decide(event_id: int, data: dict[str, Any], user: Any) -> Decision:
    action = data["action"]
    if action == "accept":
        return services.decision_accept(event_id=event_id, user=user, note=data["note"])
    if action == "reject":
        return services.decision_reject(
            event_id=event_id, user=user, reason=data["reason"], note=data["note"]
        )
    if action == "tag":
        return services.decision_tag(
            event_id=event_id, user=user, tag=data["tag"], note=data["note"]
        )
    if action == "untag":
        return services.decision_untag(
            event_id=event_id, user=user, tag=data["tag"], note=data["note"]
        )
    return services.decision_gold(
        event_id=event_id,
        user=user,
        text=data["text"],
        position=data["position"],
        note=data["note"],
    )


class EventDecisionsApi(APIView):
    """GET: the event's decisions, newest first. POST: decide (accept, reject with a reason, tag,
    untag, gold with the better reply)."""

    def get_permissions(self) -> list[Any]:
        return [IsCurator()] if self.request.method == "POST" else [IsPerson()]

    @extend_schema(
        responses={200: DecisionOutputSerializer(many=True)}, operation_id="event_decisions_list"
    )
    def get(self, request: Request, event_id: int) -> Response:
        if not Event.objects.filter(pk=event_id).exists():
            raise NotFound(f"No event {event_id}.")
        rows = selectors.event_decisions(event_id=event_id)[:500]
        return Response(DecisionOutputSerializer(rows, many=True).data)

    @extend_schema(
        request=DecisionInputSerializer,
        responses={201: DecisionOutputSerializer, 400: OpenApiResponse(ApiErrorSerializer)},
        operation_id="event_decisions_create",
    )
    def post(self, request: Request, event_id: int) -> Response:
        if not Event.objects.filter(pk=event_id).exists():
            raise NotFound(f"No event {event_id}.")
        data = DecisionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        decision = _decide(event_id, data.validated_data, request.user)
        return Response(DecisionOutputSerializer(decision).data, status=status.HTTP_201_CREATED)


class BulkInputSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["accept", "reject", "tag", "untag"])
    reason = serializers.CharField(required=False, allow_blank=True, default="")
    tag = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    events = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=100_000,
        help_text="The selected event ids; or give `filters` for the whole filtered selection.",
    )  # fmt: skip
    filters = serializers.DictField(
        required=False, help_text="The inbox's filters (as its query parameters)."
    )
    expect = serializers.IntegerField(
        required=False, min_value=0,
        help_text="With filters: the count the curator confirmed; refused if the selection grew.",
    )  # fmt: skip

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("events" in attrs) == ("filters" in attrs):
            raise serializers.ValidationError({"events": "Give either events or filters."})
        return attrs


class BulkOutputSerializer(serializers.Serializer):
    batch = serializers.UUIDField()
    count = serializers.IntegerField()
    decisions = serializers.ListField(child=serializers.IntegerField())


class DecisionBulkApi(APIView):
    """One decision on many events (the selected ids, or the whole filtered selection) in one
    transaction, under one batch id."""

    permission_classes = [IsCurator]

    @extend_schema(
        request=BulkInputSerializer,
        responses={201: BulkOutputSerializer, 400: OpenApiResponse(ApiErrorSerializer)},
    )
    def post(self, request: Request) -> Response:
        data = BulkInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        if "filters" in d:
            try:
                filters = clean_filters(d["filters"])
            except ValidationError as exc:
                raise ValidationError(
                    {f"filters.{k}": v for k, v in exc.message_dict.items()}
                ) from None
            ids = selectors.selection_ids(filters=filters, limit=services.bulk_max())
            if "expect" in d and len(ids) != d["expect"]:
                raise ValidationError(
                    {
                        "expect": f"The selection now holds {len(ids):,} events, not {d['expect']:,}: look again."
                    }
                )
        else:
            ids = d["events"]
        batch, decisions = services.decisions_bulk(
            event_ids=ids,
            action=d["action"],
            user=request.user,
            reason=d["reason"],
            tag=d["tag"],
            note=d["note"],
        )
        body = {"batch": batch, "count": len(decisions), "decisions": [x.pk for x in decisions]}
        return Response(BulkOutputSerializer(body).data, status=status.HTTP_201_CREATED)


class DecisionUndoApi(APIView):
    permission_classes = [IsCurator]

    @extend_schema(request=None, responses={200: DecisionOutputSerializer})
    def post(self, request: Request, decision_id: int) -> Response:
        if not Decision.objects.filter(pk=decision_id).exists():
            raise NotFound(f"No decision {decision_id}.")
        decision = services.decision_undo(decision_id=decision_id, user=request.user)
        return Response(DecisionOutputSerializer(decision).data)


class BatchUndoApi(APIView):
    permission_classes = [IsCurator]

    @extend_schema(request=None, responses={200: BulkOutputSerializer})
    def post(self, request: Request, batch: Any) -> Response:
        decisions = services.decision_batch_undo(batch=batch, user=request.user)
        body = {"batch": batch, "count": len(decisions), "decisions": [x.pk for x in decisions]}
        return Response(BulkOutputSerializer(body).data)


class InboxCountApi(APIView):
    """How many events match the inbox's filters (query parameters), counted up to `cap`
    (default 1,000; at most the bulk limit, for the bulk confirm)."""

    permission_classes = [IsPerson]

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        filters = clean_filters(request.query_params)
        cap = request.query_params.get("cap", "")
        if cap and not ((parse_id(cap) or 0) and 1 <= int(cap) <= services.bulk_max()):
            raise ValidationError({"cap": f"Give a whole number from 1 to {services.bulk_max()}."})
        count = selectors.inbox_count(filters=filters, cap=int(cap) if cap else selectors.COUNT_CAP)
        return Response({**count, "label": selectors.count_label(count)})
