"""Thumbs-up rate per model and checkpoint, over time, with Wilson intervals.

A rate of 3 out of 3 is not "100 %": every point carries its Wilson interval
(apps.evaluation.stats), so a fresh checkpoint with a handful of thumbs shows a wide bar."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from apps.evaluation.selectors import BattleFilter, thumbs_counts
from apps.evaluation.stats import wilson_interval


def _point(up: int, down: int, confidence: float) -> dict[str, Any]:
    n = up + down
    rate, lower, upper = wilson_interval(up, n, confidence)
    return {
        "up": up,
        "down": down,
        "n": n,
        "rate": round(rate, 4) if n else None,
        "lower": round(lower, 4),
        "upper": round(upper, 4),
    }


def _day(value: datetime | date) -> str:
    return (value.date() if isinstance(value, datetime) else value).isoformat()


def thumbs_rates(
    f: BattleFilter,
    *,
    model: str | None = None,
    checkpoint: str | None = None,
    bucket: str = "day",
    confidence: float = 0.95,
) -> dict[str, Any]:
    """{"bucket", "confidence", "series": [{"model", "checkpoint", "total": point,
    "points": [{"period": "YYYY-MM-DD", **point}]}]}; a point is up, down, n, rate, lower, upper.
    Series are ordered by model then checkpoint; the empty checkpoint means "not named"."""
    series: dict[tuple[str, str], dict[str, Any]] = {}
    for row in thumbs_counts(f, model=model, checkpoint=checkpoint, bucket=bucket):
        key = (row["model"], row["checkpoint"])
        entry = series.setdefault(
            key, {"model": key[0], "checkpoint": key[1], "points": [], "_up": 0, "_down": 0}
        )
        entry["points"].append(
            {"period": _day(row["period"]), **_point(row["up"], row["down"], confidence)}
        )
        entry["_up"] += row["up"]
        entry["_down"] += row["down"]
    out = []
    for entry in series.values():
        entry["total"] = _point(entry.pop("_up"), entry.pop("_down"), confidence)
        out.append(entry)
    return {"bucket": bucket, "confidence": confidence, "series": out, "settings": f.as_dict()}
