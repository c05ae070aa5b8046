"""Held for review: the source asked that everything it sends waits for a curator."""

from __future__ import annotations

from apps.quality.filters.base import QUARANTINE, Context, Filter, FilterResult, Reason


class HoldFilter(Filter):
    name = "hold"
    version = "1"

    def check(self, ctx: Context) -> FilterResult:
        if ctx.event.status != "quarantined":
            return FilterResult.clean()
        return FilterResult(
            action=QUARANTINE,
            score=0.0,
            reasons=[
                Reason(
                    "hold.source_review",
                    "The source holds all its feedback for a curator's review.",
                )
            ],
        )


FILTER = HoldFilter()
