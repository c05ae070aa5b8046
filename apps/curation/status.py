"""The /status/ page: whether the loop is moving. Workers alive (Celery inspect, a one-second
timeout), the queues each consumes and the tasks it runs now, messages waiting per queue, and the
events still waiting for a verdict (how many, and the oldest), which is what a missing worker
shows up as first."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from apps.core.health import queue_depths
from apps.core.workers import embedded_broker, workers_alive
from apps.curation.roles import role_required
from apps.quality.backlog import events_without_verdict


def status_data(*, timeout: float = 1.0) -> dict[str, Any]:
    """Workers, queue depths and the verdict backlog, as the page shows them."""
    waiting = events_without_verdict()
    oldest = waiting.order_by("received_at", "id").values("id", "received_at").first()
    age = (timezone.now() - oldest["received_at"]).total_seconds() if oldest else None
    return {
        "workers": workers_alive(timeout=timeout),
        "queues": queue_depths(),
        "waiting": waiting.count(),
        "oldest_waiting": oldest,
        "oldest_age_s": age,
        "embedded": embedded_broker(),
    }


@require_GET
@role_required
def status_page(request: HttpRequest) -> HttpResponse:
    return render(request, "curation/status.html", {"status": status_data()})
