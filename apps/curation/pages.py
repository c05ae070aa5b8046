"""The curator workbench's pages: inbox, event, dashboard (server-rendered, Django login).

Pages only read; every decision goes through the JSON API (apps/curation/apis.py) from the
page's script, so the keyboard flow never reloads the page."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.core import charts
from apps.core.ids import parse_id
from apps.curation import selectors
from apps.curation.filters import clean_filters, filters_as_params
from apps.curation.markdown import render_markdown
from apps.curation.models import Decision
from apps.curation.roles import is_curator, role_required
from apps.curation.services import bulk_max
from apps.feedback.models import EVENT_TYPES, Event
from apps.feedback.services.normalize import message_text
from apps.quality.selectors import verdict_history
from apps.sources.models import Source

REASON_KEYS = [("1", "spam", "spam"), ("2", "low_quality", "low quality"), ("3", "unsafe", "unsafe"), ("4", "pii", "contains PII")]  # fmt: skip
SNIPPET = 160


def _snippet(text: str, limit: int = SNIPPET) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _row(event: Event) -> dict[str, Any]:
    """What the inbox shows of one event (plain data; the template escapes it)."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    messages = payload.get("messages") or []
    users = [
        message_text(m.get("content"))
        for m in messages
        if isinstance(m, dict) and m.get("role") == "user"
    ]
    if event.type in ("rating", "edit"):
        answer = payload.get("edited") if event.type == "edit" else payload.get("response")
    else:
        responses = [r for r in payload.get("responses") or [] if isinstance(r, dict)]
        answer = " | ".join(_snippet(message_text(r.get("content")), 60) for r in responses[:3])
    verdicts = getattr(event, "current_verdicts", None) or []
    verdict = verdicts[0] if verdicts else None
    rating = getattr(event, "rating_row", None) if event.type == "rating" else None
    payload_tags = [t for t in payload.get("tags") or [] if isinstance(t, str)]
    return {
        "event": event,
        "prompt": _snippet(users[-1] if users else ""),
        "answer": _snippet(answer if isinstance(answer, str) else ""),
        "comment": _snippet(
            payload.get("comment") if isinstance(payload.get("comment"), str) else "", 100
        ),
        "verdict": verdict,
        "rating": rating,
        "choice": payload.get("choice"),
        "curator_tags": [t.name for t in event.curator_tags.all()],
        "payload_tags": payload_tags[:5],
        "judgement": getattr(event, "judgement", None),
    }


@require_GET
@role_required
def inbox(request: HttpRequest) -> HttpResponse:
    errors: dict[str, list[str]] = {}
    try:
        filters = clean_filters(request.GET)
    except ValidationError as exc:
        errors = exc.message_dict
        filters = {}
    before_raw = request.GET.get("before", "")
    before = parse_id(before_raw)
    page = selectors.inbox_page(filters=filters, before=before) if not errors else None
    params = filters_as_params(filters)
    query = urlencode(params)
    context = {
        "page": page,
        "rows": [_row(e) for e in page.rows] if page else [],
        "errors": errors,
        "values": request.GET,
        "filters": filters,
        "query": query,
        "next_url": f"?{urlencode({**params, 'before': page.next_cursor})}"
        if page and page.next_cursor
        else "",
        "first_url": f"?{query}" if query else "?",
        "sources": list(Source.objects.order_by("name").values_list("name", flat=True)[:200]),
        "types": EVENT_TYPES,
        "reasons": REASON_KEYS,
        "can_decide": is_curator(request.user),
        "bulk_max": bulk_max(),
        # The datasets page's new-recipe form takes its filters from the query string.
        "dataset_url": f"/datasets/?{query}#new-recipe" if query else "/datasets/#new-recipe",
    }
    return render(request, "curation/inbox.html", context)


def _conversation(event: Event) -> dict[str, Any]:
    """The event's texts in reading order, markdown rendered safely (see curation.markdown)."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    messages = [
        {"role": str(m.get("role") or "?"), "html": render_markdown(message_text(m.get("content")))}
        for m in payload.get("messages") or []
        if isinstance(m, dict)
    ]
    responses: list[dict[str, Any]] = []
    if event.type in ("rating", "edit"):
        text = payload.get("response") if isinstance(payload.get("response"), str) else ""
        responses.append(
            {
                "position": 0,
                "model": event.model,
                "text": text,
                "html": render_markdown(text),
                "mark": "",
            }
        )
    else:
        ranking = payload.get("ranking") if isinstance(payload.get("ranking"), list) else []
        choice = payload.get("choice")
        for position, r in enumerate(payload.get("responses") or []):
            if not isinstance(r, dict):
                continue
            text = message_text(r.get("content"))
            mark = ""
            if event.type == "preference":
                if choice == position:
                    mark = "chosen"
                elif choice in ("tie", "both_bad"):
                    mark = "tie" if choice == "tie" else "both bad"
            elif position in ranking:
                mark = f"rank {ranking.index(position) + 1}"
            responses.append(
                {
                    "position": position,
                    "model": r.get("model") or event.model,
                    "text": text,
                    "html": render_markdown(text),
                    "mark": mark,
                }  # fmt: skip
            )
    edited = payload.get("edited") if isinstance(payload.get("edited"), str) else ""
    comment = payload.get("comment") if isinstance(payload.get("comment"), str) else ""
    return {
        "messages": messages,
        "responses": responses,
        "edited_html": render_markdown(edited) if edited else "",
        "comment": comment,
        "rating": payload.get("rating"),
        "score": payload.get("score"),
        "reason": payload.get("reason") if isinstance(payload.get("reason"), str) else "",
        "tags": [t for t in payload.get("tags") or [] if isinstance(t, str)],
        "metadata": payload.get("metadata") if isinstance(payload.get("metadata"), dict) else {},
    }


@require_GET
@role_required
def event_detail(request: HttpRequest, event_id: int) -> HttpResponse:
    event = selectors.event_for_page(event_id=event_id)
    if event is None:
        raise Http404("No such event.")
    conversation = _conversation(event)
    decisions = list(selectors.event_decisions(event_id=event.id))
    gold = next((d for d in decisions if d.action == "gold" and d.undone_at is None), None)
    verdicts = getattr(event, "current_verdicts", None) or []
    context = {
        "event": event,
        "c": conversation,
        "verdict": verdicts[0] if verdicts else None,
        "history": list(verdict_history(event_id=event.id)[:20]),
        "rater": selectors.rater_summary(event=event),
        "similar": selectors.similar_events(event=event),
        "decisions": decisions,
        "curator_tags": selectors.event_tags(event_id=event.id),
        "gold": gold,
        "gold_text": gold.gold_response
        if gold
        else (conversation["responses"][0]["text"] if conversation["responses"] else ""),
        "reasons": REASON_KEYS,
        "can_decide": is_curator(request.user),
        "prev_id": Event.objects.filter(id__gt=event.id)
        .order_by("id")
        .values_list("id", flat=True)
        .first(),
        "next_id": Event.objects.filter(id__lt=event.id)
        .order_by("-id")
        .values_list("id", flat=True)
        .first(),
        "actions": Decision.Action,
    }
    return render(request, "curation/event.html", context)


@require_GET
@role_required
def dashboard(request: HttpRequest) -> HttpResponse:
    days_raw = request.GET.get("days", "30")
    asked = parse_id(days_raw)
    days = asked if asked is not None and 1 <= asked <= 365 else 30
    data = selectors.dashboard_data(days=days)

    def series(by_name: dict[str, list[tuple[Any, float]]]) -> list[dict[str, Any]]:
        return [{"name": name, "points": points} for name, points in by_name.items() if points]

    per_source = series(data["per_source"])
    thumbs = series(data["thumbs"])
    quarantine = [{"name": "quarantined or rejected", "points": data["quarantine"]}]
    context = {
        "data": data,
        "days": days,
        "events_chart": charts.line_chart(per_source, x_label="day", y_label="events", width=720, height=260) if per_source else "",
        "thumbs_chart": charts.line_chart(thumbs, x_label="day", y_label="thumbs-up rate", width=720, height=260, y_min=0, y_max=1) if thumbs else "",
        "quarantine_chart": charts.line_chart(quarantine, x_label="day", y_label="share flagged", width=720, height=220, y_min=0) if data["quarantine"] else "",
        "status_chart": charts.bar_chart(
            [{"label": k, "value": v} for k, v in sorted(data["status_totals"].items())]
        ) if data["status_totals"] else "",
    }  # fmt: skip
    return render(request, "curation/dashboard.html", context)
