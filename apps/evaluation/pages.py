"""The leaderboard page: ratings with intervals, the win-rate matrix and thumbs-up rates."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.core.charts import interval_chart, line_chart
from apps.curation.roles import role_required
from apps.evaluation.apis import LeaderboardQuerySerializer
from apps.evaluation.leaderboard import leaderboard_compute
from apps.evaluation.thumbs import thumbs_rates
from apps.sources.models import Source

FORM_FIELDS = [
    "source",
    "tag",
    "since",
    "until",
    "min_trust",
    "meta",
    "bootstrap",
    "anchor",
    "min_battles",
]


def _heat(rate: float | None) -> str:
    """A background colour for a win rate: blue above one half, orange below."""
    if rate is None:
        return ""
    strength = min(1.0, abs(rate - 0.5) * 2)
    colour = "59,111,224" if rate >= 0.5 else "224,102,59"
    return f"background: rgba({colour},{0.08 + 0.5 * strength:.2f})"


def win_matrix(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the win-rate matrix, models in leaderboard order (row model against column model)."""
    names = [m["model"] for m in board["models"]]
    cell: dict[tuple[str, str], tuple[float, int]] = {}
    for pair in board["pairs"]:
        n = pair["battles"]
        if not n:
            continue
        rate_a = (pair["a_wins"] + 0.5 * pair["ties"]) / n
        cell[(pair["model_a"], pair["model_b"])] = (rate_a, n)
        cell[(pair["model_b"], pair["model_a"])] = (1.0 - rate_a, n)
    rows = []
    for row in names:
        cells = []
        for col in names:
            rate, n = cell.get((row, col), (None, 0))
            cells.append(
                {
                    "rate": rate,
                    "n": n,
                    "self": row == col,
                    "style": _heat(rate),
                    "title": f"{row} vs {col}: {n} battles" if n else f"{row} vs {col}: no battles",
                }
            )
        rows.append({"model": row, "cells": cells})
    return rows


@role_required
def leaderboard_page(request: HttpRequest) -> HttpResponse:
    params = {k: v for k, v in request.GET.items() if k in FORM_FIELDS and v.strip()}
    if request.GET.get("style_control"):
        params["style_control"] = True
    if request.GET.get("include_quarantined"):
        params["include_quarantined"] = True
    query = LeaderboardQuerySerializer(data=params)
    board = None
    thumbs = None
    errors: dict[str, list[str]] = {}
    if query.is_valid():
        settings = query.leaderboard_settings()
        board = leaderboard_compute(settings)
        thumbs = thumbs_rates(settings.filter, bucket=request.GET.get("bucket") or "day")
    else:
        errors = {k: [str(m) for m in v] for k, v in query.errors.items()}
    context: dict[str, Any] = {
        "board": board,
        "errors": errors,
        "params": request.GET,
        "sources": Source.objects.order_by("name").values_list("name", flat=True),
    }
    if board is not None:
        context["interval_svg"] = interval_chart(
            [
                {
                    "label": f"{m['model']} (group {m['group']})"
                    if len(board["groups"]) > 1
                    else m["model"],
                    "value": m["rating"],
                    "lower": m["lower"] if m["lower"] is not None else m["rating"],
                    "upper": m["upper"] if m["upper"] is not None else m["rating"],
                    "muted": not m["reliable"],
                }
                for m in board["models"]
            ],
            x_label="rating (Elo scale)",
        )
        context["matrix"] = win_matrix(board)
    if thumbs is not None:
        series = [
            {
                "name": f"{s['model']} @ {s['checkpoint']}" if s["checkpoint"] else s["model"],
                "points": [(date.fromisoformat(p["period"]), p["rate"]) for p in s["points"]],
            }
            for s in thumbs["series"]
        ]
        context["thumbs"] = thumbs
        context["thumbs_svg"] = line_chart(
            series, x_label="day", y_label="thumbs-up rate", y_min=0, y_max=1
        )
    return render(request, "evaluation/leaderboard.html", context)
