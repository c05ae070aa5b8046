"""Velocity: bursts of events from one rater, one client address or one source, beyond the
thresholds in settings (`QUALITY_RATER_PER_MINUTE`, `_PER_HOUR`, `QUALITY_IP_…`,
`QUALITY_SOURCE_PER_MINUTE`; 0 turns a window off).

A rater's events are placed at the time the user gave them (the client's clock, never later
than receipt), so that an import of last year's history is not one burst; an address's and a
source's at the time they arrived. Every event of a burst is quarantined, the first ones too
when they arrive in the same batch; a replay (`requalify`) sees whole bursts."""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime, timedelta
from typing import Any

from apps.quality import conf
from apps.quality.filters.base import (
    PASS,
    QUARANTINE,
    Batch,
    Context,
    Filter,
    FilterResult,
    Reason,
)
from apps.quality.filters.reputation import batch_vote_caps

DIMENSIONS = {
    # dim → (what the sentence calls it, the event's key, its time, settings prefix)
    "rater": ("rater", lambda e: e.rater_hash, lambda e: e.at, "RATER"),
    "ip": ("network address", lambda e: e.ip_hash, lambda e: e.received_at, "IP"),
    "source": ("source", lambda e: e.source_id, lambda e: e.received_at, "SOURCE"),
}
WINDOWS = (("MINUTE", 60, "a minute"), ("HOUR", 3600, "an hour"))


def _limits(prefix: str) -> list[tuple[int, int, str]]:
    """(seconds, limit, words) of each window that PREFIX's settings turn on."""
    found = []
    for suffix, seconds, words in WINDOWS:
        limit = conf.get(f"{prefix}_PER_{suffix}")
        if limit:
            found.append((seconds, int(limit), words))
    return found


class VelocityFilter(Filter):
    name = "velocity"
    version = "1"
    uses_history = True

    def prepare(self, batch: Batch) -> None:
        # dim → event id → window seconds → events of that key within the window up to the
        # event's own time: those judged before (counted by the database) and the batch's own.
        state: dict[str, Any] = {}
        for dim, (_, key_of, time_of, prefix) in DIMENSIONS.items():
            limits = _limits(prefix)
            windows = [seconds for seconds, _, _ in limits]
            keyed = [(e.id, key_of(e), time_of(e)) for e in batch.events if key_of(e)]
            if not windows or not keyed:
                continue
            probes = [
                (key, at - timedelta(seconds=seconds), at)
                for _, key, at in keyed
                for seconds in windows
            ]
            before = iter(batch.history.window_counts(dim, probes, batch.ids))
            own = _own_counts(keyed, windows)
            state[f"{dim}.limits"] = limits
            state[dim] = {
                event_id: {seconds: next(before) + own[(event_id, seconds)] for seconds in windows}
                for event_id, _, _ in keyed
            }
        # A source whose policy lifts per-rater volume limits (Source.daily_vote_cap = 0: a
        # research log, where a handful of annotators cast every vote) has no rater bursts.
        state["unlimited_sources"] = {pk for pk, cap in batch_vote_caps(batch).items() if not cap}
        batch.state[self.name] = state

    def check(self, ctx: Context) -> FilterResult:
        reasons = []
        state = ctx.state[self.name]
        unlimited = state.get("unlimited_sources") or set()
        for dim, (label, _, _, _) in DIMENSIONS.items():
            if dim == "rater" and ctx.event.source_id in unlimited:
                continue
            counts = (state.get(dim) or {}).get(ctx.event.id)
            reason = self._burst(counts, label, state[f"{dim}.limits"]) if counts else None
            if reason:
                reasons.append(reason)
        if not reasons:
            return FilterResult(action=PASS)
        return FilterResult(action=QUARANTINE, score=0.6, reasons=reasons, trust=0.5)

    @staticmethod
    def _burst(
        counts: dict[int, int], label: str, limits: list[tuple[int, int, str]]
    ) -> Reason | None:
        for seconds, limit, words in limits:
            count = counts[seconds]
            if count > limit:
                return Reason(
                    f"velocity.{label.split()[-1]}_burst",
                    f"This {label} sent {count} events within {words} (limit {limit}).",
                )
        return None


def _own_counts(
    keyed: list[tuple[int, Any, datetime]], windows: list[int]
) -> dict[tuple[int, int], int]:
    """(event id, window) → the batch's events of the event's key within the window up to the
    event's time (itself included)."""
    times: dict[Any, list[datetime]] = {}
    for _, key, at in keyed:
        times.setdefault(key, []).append(at)
    for found in times.values():
        found.sort()
    counts = {}
    for event_id, key, at in keyed:
        found = times[key]
        upto = bisect_right(found, at)
        for seconds in windows:
            counts[(event_id, seconds)] = upto - bisect_right(
                found, at - timedelta(seconds=seconds)
            )
    return counts


FILTER = VelocityFilter()
