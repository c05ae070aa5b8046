from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from apps.core import health
from apps.core import metrics as core_metrics


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Alive: the process answers."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready: the database answers (503 if not); `degraded` without the broker or Redis."""
    code, body = health.readiness()
    return JsonResponse(body, status=code)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format: events per source and status, ingest latency, queue depth."""
    return HttpResponse(core_metrics.render(), content_type=CONTENT_TYPE_LATEST)
