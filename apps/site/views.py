"""The home page: a landing page without data for visitors, the overview of the event log for
people with a role."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.curation.roles import has_role
from apps.feedback.selectors import overview
from apps.quality.models import Verdict
from apps.site.selectors import home_counts_cached


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Anonymous visitors and users without a role get the landing page (links to log in and to
    the docs, nothing from the event log); viewers, curators and admins get the overview."""
    if not has_role(request.user):
        return render(request, "landing.html")
    data = overview()
    # Each event with its verdict, the one truth the leaderboard and datasets go by (the ingest
    # status says only whether the source held it for review).
    verdicts = dict(
        Verdict.objects.filter(
            event_id__in=[event.pk for event in data["recent"]], is_current=True
        ).values_list("event_id", "status")
    )
    for event in data["recent"]:
        event.verdict = verdicts.get(event.pk, "")
    return render(request, "home.html", {"overview": data, "counts": home_counts_cached()})
