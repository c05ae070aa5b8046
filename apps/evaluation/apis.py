"""The evaluation API: the leaderboard and thumbs-up rates, as JSON.

Both answer to a Django session (any logged-in user: reads need a login, whatever the group) or
a secret key (`Authorization: Bearer sk-…`); with a key the slice is always the key's own source,
since a key must not read other sources' feedback."""

from __future__ import annotations

import json
import re
from datetime import datetime, time, timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ApiErrorSerializer
from apps.curation.roles import has_role
from apps.evaluation.leaderboard import (
    LeaderboardSettings,
    default_min_battles,
    leaderboard_compute,
)
from apps.evaluation.selectors import BattleFilter
from apps.evaluation.thumbs import thumbs_rates
from apps.sources.models import ApiKey

MAX_BOOTSTRAP = 10_000


class CanReadEvaluation(permissions.BasePermission):
    message = "Reading the leaderboard needs a login or a secret key (sk-…)."

    def has_permission(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, ApiKey):
            return request.auth.kind == ApiKey.Kind.SECRET
        return has_role(request.user)


def parse_when(value: str, *, end: bool = False) -> datetime:
    """An ISO date or date-time (naive means the server's time zone). A bare date as an `until`
    bound means the end of that day, so `--until 2024-05-31` includes the 31st."""
    value = value.strip()
    try:
        if len(value) == 10:
            day = datetime.fromisoformat(value).date()
            moment = datetime.combine(day + timedelta(days=1) if end else day, time.min)
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise serializers.ValidationError("Use an ISO date (2024-05-31) or date-time.") from exc
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


class SliceSerializer(serializers.Serializer):
    source = serializers.CharField(required=False, max_length=100)
    tag = serializers.CharField(required=False, max_length=64)
    since = serializers.CharField(required=False, max_length=40)
    until = serializers.CharField(required=False, max_length=40)
    min_trust = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    meta = serializers.CharField(
        required=False,
        max_length=500,
        help_text="KEY=VALUE[,KEY=VALUE…]: only events whose metadata holds these values "
        "(JSON values: `anony=true` is the boolean, `turn=1` the number).",
    )
    include_quarantined = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Also count events held for review (e.g. an imported log's heavy voters).",
    )

    def validate_meta(self, value: str) -> tuple[tuple[str, Any], ...]:
        pairs = []
        for part in value.split(","):
            key, sep, raw = part.strip().partition("=")
            key = key.strip()
            if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", key):
                raise serializers.ValidationError(
                    "Use KEY=VALUE pairs separated by commas, e.g. anony=true; keys are "
                    "letters, digits and underscores."
                )
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw
            if isinstance(parsed, dict | list):
                parsed = raw
            pairs.append((key, parsed))
        return tuple(pairs)

    def validate_since(self, value: str) -> datetime:
        return parse_when(value)

    def validate_until(self, value: str) -> datetime:
        return parse_when(value, end=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": ["must be after since"]})
        return attrs

    def battle_filter(self) -> BattleFilter:
        d = self.validated_data
        return BattleFilter(
            source=d.get("source"),
            tag=d.get("tag"),
            since=d.get("since"),
            until=d.get("until"),
            min_trust=d.get("min_trust"),
            meta=d.get("meta", ()),
            include_quarantined=d.get("include_quarantined", False),
        )


class LeaderboardQuerySerializer(SliceSerializer):
    bootstrap = serializers.IntegerField(required=False, min_value=0, max_value=MAX_BOOTSTRAP)
    seed = serializers.IntegerField(required=False, min_value=0, max_value=2**32 - 1)
    confidence = serializers.FloatField(required=False, min_value=0.5, max_value=0.999)
    anchor = serializers.CharField(
        required=False, max_length=250, help_text="MODEL=RATING, e.g. `gpt4=1200`."
    )
    style_control = serializers.BooleanField(required=False, default=False)
    min_battles = serializers.IntegerField(required=False, min_value=0, max_value=10**9)
    elo_k = serializers.FloatField(
        required=False, min_value=0.0, max_value=1000.0, help_text="Also compute online Elo."
    )
    exact = serializers.BooleanField(required=False, default=False)

    def validate_anchor(self, value: str) -> tuple[str, float]:
        model, sep, rating = value.rpartition("=")
        try:
            number = float(rating)
        except ValueError:
            number = float("nan")
        if not sep or not model or number != number or abs(number) > 1e6:
            raise serializers.ValidationError("Use MODEL=RATING, e.g. gpt4=1200.")
        return (model, number)

    def leaderboard_settings(self) -> LeaderboardSettings:
        d = self.validated_data
        return LeaderboardSettings(
            filter=self.battle_filter(),
            bootstrap=d.get("bootstrap", 1000),
            seed=d.get("seed", 0),
            confidence=d.get("confidence", 0.95),
            anchor=d.get("anchor"),
            style_control=d.get("style_control", False),
            min_battles=d.get("min_battles", default_min_battles()),
            online_elo_k=d.get("elo_k"),
            exact=d.get("exact", False),
        )


class ThumbsQuerySerializer(SliceSerializer):
    model = serializers.CharField(required=False, max_length=200)
    checkpoint = serializers.CharField(required=False, max_length=200, allow_blank=True)
    bucket = serializers.ChoiceField(choices=["day", "week"], required=False, default="day")
    confidence = serializers.FloatField(required=False, min_value=0.5, max_value=0.999)


def _scoped(request: Request, params: dict[str, Any]) -> dict[str, Any]:
    params = {k: v for k, v in params.items()}
    if isinstance(request.auth, ApiKey):
        params["source"] = str(request.auth.source_id)
    return params


_ERRORS = {
    400: OpenApiResponse(ApiErrorSerializer, description="A bad parameter (see `fields`)."),
    401: OpenApiResponse(ApiErrorSerializer, description="No key and no login."),
    403: OpenApiResponse(ApiErrorSerializer, description="A publishable key."),
}


class LeaderboardApi(APIView):
    permission_classes = [CanReadEvaluation]

    @extend_schema(
        operation_id="leaderboard",
        summary="Bradley-Terry ratings with bootstrap intervals, ranks, groups and warnings",
        parameters=[LeaderboardQuerySerializer],
        responses={200: OpenApiResponse(description="The leaderboard object."), **_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = LeaderboardQuerySerializer(data=_scoped(request, request.query_params.dict()))
        query.is_valid(raise_exception=True)
        return Response(leaderboard_compute(query.leaderboard_settings()))


class ThumbsApi(APIView):
    permission_classes = [CanReadEvaluation]

    @extend_schema(
        operation_id="thumbs",
        summary="Thumbs-up rate per model and checkpoint over time, with Wilson intervals",
        parameters=[ThumbsQuerySerializer],
        responses={200: OpenApiResponse(description="Series per model and checkpoint."), **_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = ThumbsQuerySerializer(data=_scoped(request, request.query_params.dict()))
        query.is_valid(raise_exception=True)
        d = query.validated_data
        return Response(
            thumbs_rates(
                query.battle_filter(),
                model=d.get("model"),
                checkpoint=d.get("checkpoint"),
                bucket=d["bucket"],
                confidence=d.get("confidence", 0.95),
            )
        )
