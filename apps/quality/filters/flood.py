"""Floods: the same comment or edit — exactly, or nearly (SimHash over character 4-grams of the
normalized text, within `QUALITY_FLOOD_MAX_DISTANCE` bits) — from several raters, or again and
again from one, within `QUALITY_FLOOD_WINDOW_SECONDS` before or after.

Short stock phrases ("thanks, great answer") are what many people honestly write, so a text needs
`QUALITY_FLOOD_MIN_WORDS` words and `QUALITY_FLOOD_MIN_CHARS` characters to count. When a flood is
found, its earlier members that this filter had not flagged yet are judged again at once
(`followups`); members it flagged already keep their verdict."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

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
from apps.quality.text import bands, hamming, to_unsigned


def identity(row: dict[str, Any]) -> str:
    """Who sent it: the rater, else the client address, else nobody we can tell apart."""
    if row["rater_hash"]:
        return f"r:{row['rater_hash']}"
    if row["ip_hash"]:
        return f"ip:{row['ip_hash']}"
    return f"event:{row['event_id']}"


def _row(event: EventView) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "rater_hash": event.rater_hash,
        "ip_hash": event.ip_hash,
        "source_id": event.source_id,
        "simhash": event.simhash,
        "exact": event.exact,
        "at": event.at,
    }


class FloodFilter(Filter):
    name = "flood"
    version = "1"
    uses_history = True

    def prepare(self, batch: Batch) -> None:
        window = timedelta(seconds=conf.get("FLOOD_WINDOW_SECONDS"))
        texts = [event for event in batch.events if event.simhash is not None]
        # Rows grouped by SimHash (copies of one text share it, and a flood is many copies), and
        # each band's SimHashes: a look-up tests each distinct text once, not each copy 4 times.
        by_hash: dict[int, list[dict[str, Any]]] = {}
        index: list[dict[int, set[int]]] = [{}, {}, {}, {}]
        if texts:
            wanted: list[set[int]] = [set(), set(), set(), set()]
            for event in texts:
                for i, band in enumerate(bands(event.simhash)):  # type: ignore[arg-type]
                    wanted[i].add(band)
            lo = min(event.at for event in texts) - window
            hi = max(event.at for event in texts) + window
            rows = batch.history.near_texts(wanted, lo, hi, batch.ids)
            for row in rows:
                row["simhash"] = to_unsigned(row["simhash"])
            rows.extend(_row(event) for event in texts)
            for row in rows:
                by_hash.setdefault(row["simhash"], []).append(row)
            for value in by_hash:
                for i, band in enumerate(bands(value)):
                    index[i].setdefault(band, set()).add(value)
        batch.state[self.name] = {
            "index": index,
            "by_hash": by_hash,
            "window": window,
            "batch": batch.ids,
        }

    def check(self, ctx: Context) -> FilterResult:
        event = ctx.event
        if event.simhash is None:
            return FilterResult(action=PASS)
        state = ctx.state[self.name]
        window, distance = state["window"], conf.get("FLOOD_MAX_DISTANCE")
        near: set[int] = set()
        for i, band in enumerate(bands(event.simhash)):
            near.update(state["index"][i].get(band, ()))
        matches: dict[int, dict[str, Any]] = {}
        for value in sorted(near):
            if hamming(value, event.simhash) > distance:
                continue
            for row in state["by_hash"][value]:
                if row["event_id"] != event.id and abs(row["at"] - event.at) <= window:
                    matches[row["event_id"]] = row
        if not matches:
            return FilterResult(action=PASS)
        me = identity(_row(event))
        senders = {identity(row) for row in matches.values()} | {me}
        repeats = 1 + sum(identity(row) == me for row in matches.values())
        exact = all(row["exact"] == event.exact for row in matches.values())
        hours = window.total_seconds() / 3600
        span = f"{hours:g} hours" if hours != 1 else "an hour"
        kind = "exactly" if exact else "nearly"
        if len(senders) >= conf.get("FLOOD_MIN_RATERS"):
            reason = Reason(
                "flood.many_raters", f"{len(senders)} raters sent {kind} this text within {span}."
            )
        elif repeats >= conf.get("FLOOD_MIN_REPEATS"):
            reason = Reason(
                "flood.repeated", f"This rater sent {kind} this text {repeats} times within {span}."
            )
        else:
            return FilterResult(action=PASS)
        earlier = sorted(eid for eid in matches if eid not in state["batch"])
        return FilterResult(
            action=QUARANTINE, score=0.7, reasons=[reason], trust=0.5, followups=earlier
        )


FILTER = FloodFilter()
