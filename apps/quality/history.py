"""What the history-aware filters know about events judged before: one query per question per
batch, against the quality app's own signal tables and their indexes (the raw event log is never
scanned). `NoHistory` answers for `spam_eval`, where a corpus has no past."""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from datetime import datetime
from typing import Any

import orjson
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Q, Sum

from apps.quality import conf
from apps.quality.models import EventSignal, RaterReputation, VoteSignal

CONSENSUS_SECONDS = 300  # a pair's consensus moves slowly: recount it every few minutes

_DIMS = {
    "rater": ("rater_hash", "at"),
    "ip": ("ip_hash", "received_at"),
    "source": ("source_id", "received_at"),
}

# dim → the key's column and its PostgreSQL type
_COLUMNS = {
    "rater": ("rater_hash", "text"),
    "ip": ("ip_hash", "text"),
    "source": ("source_id", "bigint"),
}


class DbHistory:
    def window_counts(
        self,
        dim: str,
        probes: list[tuple[Any, datetime, datetime]],
        exclude: set[int],
        *,
        votes: bool = False,
    ) -> list[int]:
        """For each probe (key, lo, hi): how many signals of KEY on DIM lie in (lo, hi] (only
        votes with VOTES), leaving out the events in EXCLUDE. PostgreSQL counts them with the
        (key, time) index in one statement; elsewhere the times are read and counted here."""
        if not probes:
            return []
        if connection.vendor == "postgresql":
            return self._window_counts_sql(dim, probes, exclude, votes=votes)
        key_field, time_field = _DIMS[dim]
        rows = EventSignal.objects.filter(
            **{
                f"{key_field}__in": {key for key, _, _ in probes},
                f"{time_field}__gt": min(lo for _, lo, _ in probes),
                f"{time_field}__lte": max(hi for _, _, hi in probes),
            }
        )
        if votes:
            rows = rows.filter(is_vote=True)
        found: dict[Any, list[datetime]] = {}
        for key, at, event_id in rows.values_list(key_field, time_field, "event_id"):
            # The batch's own events are left out here, not in SQL: a NOT IN of a thousand ids
            # costs more to send than the few rows it saves.
            if event_id not in exclude:
                found.setdefault(key, []).append(at)
        for times in found.values():
            times.sort()
        return [
            bisect_right(times, hi) - bisect_right(times, lo)
            for key, lo, hi in probes
            for times in (found.get(key, ()),)
        ]

    @staticmethod
    def _window_counts_sql(
        dim: str, probes: list[tuple[Any, datetime, datetime]], exclude: set[int], *, votes: bool
    ) -> list[int]:
        # Reading every time of a busy rater's last hour into Python, batch after batch, cost
        # more than judging; an index range count per probe costs microseconds. The probes
        # travel as one JSON document (psycopg adapts a list of datetimes element by element:
        # slower than the counting), the left-out ids as an array literal, tested only for rows
        # whose id lies within their range (a row by row `<> ALL` of a batch's ids is costly).
        _, time_field = _DIMS[dim]
        key_column, key_type = _COLUMNS[dim]
        quote = connection.ops.quote_name
        table = quote(EventSignal._meta.db_table)
        key, at = quote(key_column), quote(time_field)
        vote = " AND s.is_vote" if votes else ""
        left_out = sorted(exclude) or [0]
        # Names come from the model, quoted; every value is a parameter.
        sql = (
            f"SELECT (SELECT count(*) FROM {table} s WHERE s.{key} = p.k AND s.{at} > p.lo "  # noqa: S608
            f"AND s.{at} <= p.hi{vote} AND (s.event_id < %s OR s.event_id > %s "
            "OR s.event_id <> ALL(%s::bigint[]))) "
            f"FROM jsonb_to_recordset(%s::jsonb) AS p(n int, k {key_type}, lo timestamptz, "
            "hi timestamptz) ORDER BY p.n"
        )
        document = orjson.dumps(
            [{"n": n, "k": k, "lo": lo, "hi": hi} for n, (k, lo, hi) in enumerate(probes)]
        ).decode()
        with connection.cursor() as cursor:
            cursor.execute(
                sql,
                [
                    left_out[0],
                    left_out[-1],
                    "{" + ",".join(map(str, left_out)) + "}",
                    document,
                ],
            )
            return [row[0] for row in cursor.fetchall()]

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

    def window_counts(
        self,
        dim: str,
        probes: list[tuple[Any, datetime, datetime]],
        exclude: set[int],
        *,
        votes: bool = False,
    ) -> list[int]:
        return [0] * len(probes)

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
