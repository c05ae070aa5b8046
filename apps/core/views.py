from __future__ import annotations

import hmac

from django.conf import settings
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
    """Prometheus text format: events per source and status, ingest latency, queue depth. For a
    scraper with the metrics token, or a signed-in person with a role (labels name sources)."""
    if not _may_read_metrics(request):
        user = getattr(request, "user", None)
        signed_in = bool(user and user.is_authenticated)
        response = JsonResponse(
            {
                "error": {
                    "code": "permission_denied" if signed_in else "not_authenticated",
                    "message": "This needs a role (viewer, curator or admin)."
                    if signed_in
                    else "Send Authorization: Bearer <SINKHOLE_METRICS_TOKEN>, or sign in.",
                }
            },
            status=403 if signed_in else 401,
        )
        if not signed_in:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(core_metrics.render(), content_type=CONTENT_TYPE_LATEST)


def _may_read_metrics(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token):
        return True
    user = getattr(request, "user", None)
    return bool(user and user.is_authenticated and user.has_perm("feedback.view_event"))
