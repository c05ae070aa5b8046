"""Velocity: bursts of events from one rater, one client address or one source, beyond the
thresholds in settings (`QUALITY_RATER_PER_MINUTE`, `_PER_HOUR`, `QUALITY_IP_…`,
`QUALITY_SOURCE_PER_MINUTE`; 0 turns a window off).

A rater's events are placed at the time the user gave them (the client's clock, never later
than receipt), so that an import of last year's history is not one burst; an address's and a
source's at the time they arrived. Every event of a burst is quarantined, the first ones too
when they arrive in the same batch; a replay (`requalify`) sees whole bursts."""

from __future__ import annotations

from bisect import bisect_right
from datetime import timedelta

from apps.quality import conf
from apps.quality.filters.base import (
    PASS,
    QUARANTINE,
    Batch,
    Context,
    EventView,
    Filter,
    FilterResult,
    Reason,
)
from apps.quality.filters.reputation import source_vote_caps

DIMENSIONS = {
    # dim → (what the sentence calls it, the event's key, its time, settings prefix)
    "rater": ("rater", lambda e: e.rater_hash, lambda e: e.at, "RATER"),
    "ip": ("network address", lambda e: e.ip_hash, lambda e: e.received_at, "IP"),
    "source": ("source", lambda e: e.source_id, lambda e: e.received_at, "SOURCE"),
}
WINDOWS = (("MINUTE", 60, "a minute"), ("HOUR", 3600, "an hour"))


def _limits(prefix: str) -> list[tuple[int, int, str]]:
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
        state: dict[str, dict[object, list]] = {}
        exclude = batch.ids
        for dim, (_, key_of, time_of, prefix) in DIMENSIONS.items():
            limits = _limits(prefix)
            keyed = [(key_of(e), time_of(e)) for e in batch.events if key_of(e)]
            if not limits or not keyed:
                continue
            widest = max(seconds for seconds, _, _ in limits)
            lo = min(t for _, t in keyed) - timedelta(seconds=widest)
            hi = max(t for _, t in keyed)
            times = batch.history.times(dim, {k for k, _ in keyed}, lo, hi, exclude)
            merged: dict[object, list] = {key: list(found) for key, found in times.items()}
            for key, at in keyed:
                merged.setdefault(key, []).append(at)
            for found in merged.values():
                found.sort()
            state[dim] = merged
        # A source whose policy lifts per-rater volume limits (Source.daily_vote_cap = 0: a
        # research log, where a handful of annotators cast every vote) has no rater bursts.
        state["unlimited_sources"] = {  # type: ignore[assignment]
            pk
            for pk, cap in source_vote_caps({e.source_id for e in batch.events}).items()
            if not cap
        }
        batch.state[self.name] = state

    def check(self, ctx: Context) -> FilterResult:
        reasons = []
        unlimited = ctx.state[self.name].get("unlimited_sources") or set()
        for dim, (label, key_of, time_of, prefix) in DIMENSIONS.items():
            if dim == "rater" and ctx.event.source_id in unlimited:
                continue
            reason = self._burst(
                ctx.event, ctx.state[self.name].get(dim), label, key_of, time_of, prefix
            )
            if reason:
                reasons.append(reason)
        if not reasons:
            return FilterResult(action=PASS)
        return FilterResult(action=QUARANTINE, score=0.6, reasons=reasons, trust=0.5)

    @staticmethod
    def _burst(event: EventView, merged, label, key_of, time_of, prefix) -> Reason | None:  # type: ignore[no-untyped-def]
        key = key_of(event)
        if not merged or not key or key not in merged:
            return None
        times, at = merged[key], time_of(event)
        for seconds, limit, words in _limits(prefix):
            count = bisect_right(times, at) - bisect_right(times, at - timedelta(seconds=seconds))
            if count > limit:
                return Reason(
                    f"velocity.{label.split()[-1]}_burst",
                    f"This {label} sent {count} events within {words} (limit {limit}).",
                )
        return None


FILTER = VelocityFilter()
