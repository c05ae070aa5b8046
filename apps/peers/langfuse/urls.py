"""Mounted at /api/public/ by config/urls.py: the paths Langfuse clients call."""

from django.urls import path

from apps.peers.langfuse.apis import (
    HealthApi,
    IngestionApi,
    OtelTracesApi,
    ProjectsApi,
    ScoreDetailApi,
    ScoresApi,
)

urlpatterns = [
    path("scores", ScoresApi.as_view(), name="langfuse-scores"),
    path("scores/<str:score_id>", ScoreDetailApi.as_view(), name="langfuse-score-detail"),
    path("ingestion", IngestionApi.as_view(), name="langfuse-ingestion"),
    path("projects", ProjectsApi.as_view(), name="langfuse-projects"),
    path("health", HealthApi.as_view(), name="langfuse-health"),
    path("otel/v1/traces", OtelTracesApi.as_view(), name="langfuse-otel-traces"),
]
