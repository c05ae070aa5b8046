"""What the history-aware filters know about events judged before: one query per question per
batch, against the quality app's own signal tables and their indexes (the raw event log is never
scanned). `NoHistory` answers for `spam_eval`, where a corpus has no past."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Q, Sum

from apps.quality import conf
from apps.quality.models import EventSignal, RaterReputation, VoteSignal

CONSENSUS_SECONDS = 300  # a pair's consensus moves slowly: recount it every few minutes

_DIMS = {
    "rater": ("rater_hash", "at"),
    "ip": ("ip_hash", "received_at"),
    "source": ("source_id", "received_at"),
}


class DbHistory:
    def times(
        self, dim: str, keys: set[Any], lo: datetime, hi: datetime, exclude: set[int]
    ) -> dict[Any, list[datetime]]:
        key_field, time_field = _DIMS[dim]
        rows = EventSignal.objects.filter(
            **{f"{key_field}__in": keys, f"{time_field}__gt": lo, f"{time_field}__lte": hi}
        ).values_list(key_field, time_field, "event_id")
        found: dict[Any, list[datetime]] = {}
        for key, at, event_id in rows:
            # The batch's own events are left out here, not in SQL: a NOT IN of a thousand ids
            # costs more to send than the few rows it saves.
            if event_id not in exclude:
                found.setdefault(key, []).append(at)
        return found

    def vote_times(
        self, raters: set[str], lo: datetime, hi: datetime, exclude: set[int]
    ) -> dict[str, list[datetime]]:
        rows = EventSignal.objects.filter(
            rater_hash__in=raters, is_vote=True, at__gt=lo, at__lte=hi
        ).values_list("rater_hash", "at", "event_id")
        found: dict[str, list[datetime]] = {}
        for rater, at, event_id in rows:
            if event_id not in exclude:
                found.setdefault(rater, []).append(at)
        return found

    def near_texts(
        self, bands: list[set[int]], lo: datetime, hi: datetime, exclude: set[int]
    ) -> list[dict[str, Any]]:
        match = Q()
        for index, values in enumerate(bands):
            if values:
                match |= Q(**{f"band{index}__in": values})
        rows = EventSignal.objects.filter(match, at__gte=lo, at__lte=hi).values(
            "event_id", "rater_hash", "ip_hash", "source_id", "simhash", "exact", "at"
        )
        return [row for row in rows if row["event_id"] not in exclude]

    def consensus(self, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int, int]]:
        keys = {
            pair: "quality:consensus:"
            + hashlib.blake2b("\x00".join(pair).encode(), digest_size=12).hexdigest()
            for pair in pairs
        }
        cached = cache.get_many(list(keys.values()))
        found = {pair: tuple(cached[key]) for pair, key in keys.items() if key in cached}
        missing = [pair for pair in pairs if pair not in found]
        if missing:
            match = Q()
            for lo, hi in missing:
                match |= Q(model_lo=lo, model_hi=hi)
            counts: dict[tuple[str, str], list[int]] = {pair: [0, 0, 0] for pair in missing}
            rows = (
                VoteSignal.objects.filter(match, counted=True)
                .values_list("model_lo", "model_hi", "outcome")
                .annotate(n=Count("id"))
                .order_by()
            )
            for lo, hi, outcome, n in rows:
                counts[(lo, hi)][("lo", "hi", "tie").index(outcome)] += n
            # Pairs with few votes are cheap to count and change fast: only settled ones are cached.
            settled = {
                keys[pair]: value
                for pair, value in counts.items()
                if sum(value) >= conf.get("OUTLIER_MIN_PAIR_VOTES")
            }
            cache.set_many(settled, CONSENSUS_SECONDS)
            found.update({pair: tuple(value) for pair, value in counts.items()})
        return found  # type: ignore[return-value]

    def rater_fisher(
        self, raters: set[str], before_id: int, exclude: set[int]
    ) -> dict[str, tuple[float, int]]:
        # Every event of the batch has an id of at least BEFORE_ID: nothing to exclude.
        rows = (
            VoteSignal.objects.filter(
                rater_hash__in=raters, event_id__lt=before_id, neg2logp__isnull=False
            )
            .values("rater_hash")
            .annotate(m=Sum("neg2logp"), j=Count("id"))
            .order_by()
        )
        return {row["rater_hash"]: (float(row["m"] or 0.0), int(row["j"])) for row in rows}

    def reputations(self, raters: set[str]) -> dict[str, dict[str, Any]]:
        return {
            row["rater_hash"]: row
            for row in RaterReputation.objects.filter(rater_hash__in=raters).values(
                "rater_hash", "trust", "events", "outlier"
            )
        }


class NoHistory:
    """A corpus with no past: every history question has an empty answer."""

    def times(
        self, dim: str, keys: set[Any], lo: datetime, hi: datetime, exclude: set[int]
    ) -> dict[Any, list[datetime]]:
        return {}

    def vote_times(
        self, raters: set[str], lo: datetime, hi: datetime, exclude: set[int]
    ) -> dict[str, list[datetime]]:
        return {}

    def near_texts(
        self, bands: list[set[int]], lo: datetime, hi: datetime, exclude: set[int]
    ) -> list[dict[str, Any]]:
        return []

    def consensus(self, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int, int]]:
        return {}

    def rater_fisher(
        self, raters: set[str], before_id: int, exclude: set[int]
    ) -> dict[str, tuple[float, int]]:
        return {}

    def reputations(self, raters: set[str]) -> dict[str, dict[str, Any]]:
        return {}
