"""Reads of the connectors app."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.peers.models import FastChatLogCursor, LangfuseScore
from apps.sources.models import Source


def langfuse_scores(
    *,
    source: Source,
    trace_id: str | None = None,
    observation_id: str | None = None,
    session_id: str | None = None,
    name: str | None = None,
    data_type: str | None = None,
) -> QuerySet[LangfuseScore]:
    """SOURCE's current (not retracted) Langfuse scores, newest first, with their events."""
    qs = LangfuseScore.objects.filter(source=source, retracted_at__isnull=True).select_related(
        "event"
    )
    if trace_id:
        qs = qs.filter(trace_id=trace_id)
    if observation_id:
        qs = qs.filter(observation_id=observation_id)
    if session_id:
        qs = qs.filter(session_id=session_id)
    if name:
        qs = qs.filter(name=name)
    if data_type:
        qs = qs.filter(data_type=data_type)
    return qs.order_by("-updated_at", "-id")


def fastchat_cursor(*, path: str) -> FastChatLogCursor | None:
    return FastChatLogCursor.objects.select_related("source").filter(path=path).first()
