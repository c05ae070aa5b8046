"""Unreadable: an event stored before validation bounded its values (a timestamp outside Python's
range, a number beyond 64 bits) is rejected, so no dataset, leaderboard or export ever carries it.
The log is append-only: the row itself stays as it was, listed by `find_unreadable_events`."""

from __future__ import annotations

from apps.quality.filters.base import REJECT, Context, Filter, FilterResult, Reason


class UnreadableFilter(Filter):
    name = "unreadable"
    version = "1"

    def check(self, ctx: Context) -> FilterResult:
        if not ctx.event.unreadable:
            return FilterResult.clean()
        return FilterResult(
            action=REJECT,
            score=1.0,
            reasons=[
                Reason("unreadable.values", f"No reader can carry it: {problem}.")
                for problem in ctx.event.unreadable
            ],
        )


FILTER = UnreadableFilter()
