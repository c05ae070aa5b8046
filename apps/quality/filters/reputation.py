"""Rater reputation: daily vote caps, a sequential outlier test on pairwise votes, and the trust
that a rater's history earns.

Outlier test (after the anomalous-user check of the Chatbot Arena paper, Chiang et al. 2024, §5):
each vote on a model pair gets a p-value against the consensus of that pair — the probability,
under the crowd's outcome frequencies, of an outcome at least as unlikely as this one. A rater
who votes like the crowd has p-values no smaller than uniform; Fisher's statistic
M = -2 Σ ln p over their j informative votes is then at most χ² with 2j degrees of freedom. The
rater is an outlier when P(χ²_2j ≥ M) falls below α spent over the dyadic blocks of j (the looks
at j and 2j are nearly the same test), so that looking after every vote keeps false alarms rare.
Pairs with fewer than `QUALITY_OUTLIER_MIN_PAIR_VOTES` counted votes say nothing yet.

The daily cap is the source's own where it sets one (`Source.daily_vote_cap`, 0 for none: an
imported research log judged under its own policy), else `QUALITY_DAILY_VOTE_CAP`."""

from __future__ import annotations

import math
from bisect import bisect_right
from datetime import datetime, timedelta
from typing import Any

from apps.quality import conf
from apps.quality.filters.base import PASS, QUARANTINE, Batch, Context, Filter, FilterResult, Reason
from apps.sources.models import Source


def vote_p_value(outcome: str, counts: tuple[int, int, int]) -> float | None:
    """P(an outcome at least as unlikely as OUTCOME) under the pair's consensus (lo, hi, tie)."""
    total = sum(counts)
    if total < conf.get("OUTLIER_MIN_PAIR_VOTES"):
        return None
    probs = {o: (n + 0.5) / (total + 1.5) for o, n in zip(("lo", "hi", "tie"), counts, strict=True)}
    mine = probs[outcome]
    return min(1.0, sum(p for p in probs.values() if p <= mine + 1e-12))


def outlier_p(m: float, j: int) -> float:
    """P(χ² with 2j degrees of freedom ≥ m)."""
    # scipy.stats.chi2.sf computes this very function, after ~100 µs of argument checks a call.
    from scipy.special import chdtrc

    return float(chdtrc(2 * j, m))


def source_vote_caps(source_ids: set[int]) -> dict[int, int]:
    """The daily vote cap of each source that sets its own (`Source.daily_vote_cap`; 0: none)."""
    if not source_ids:
        return {}
    rows = Source.objects.filter(pk__in=source_ids, daily_vote_cap__isnull=False).values_list(
        "pk", "daily_vote_cap"
    )
    return {pk: cap for pk, cap in rows if cap is not None}


def batch_vote_caps(batch: Batch) -> dict[int, int]:
    """`source_vote_caps` of BATCH's sources, read once per batch (velocity asks too)."""
    caps = batch.state.get("source_vote_caps")
    if caps is None:
        caps = batch.state["source_vote_caps"] = source_vote_caps(
            {e.source_id for e in batch.events}
        )
    return caps


def alpha_at(j: int) -> float:
    block = max(1, int(math.log2(j)))
    return conf.get("OUTLIER_ALPHA") * 6 / (math.pi**2 * block**2)


class ReputationFilter(Filter):
    name = "reputation"
    version = "1"
    uses_history = True

    def prepare(self, batch: Batch) -> None:
        events = [e for e in batch.events if e.rater_hash]
        raters = {e.rater_hash for e in events}
        state: dict[str, Any] = {
            "reputation": {},
            "votes_24h": {},
            "logp": {},
            "test": {},
            "caps": batch_vote_caps(batch),
        }
        batch.state[self.name] = state
        if not raters:
            return
        state["reputation"] = batch.history.reputations(raters)
        votes = [e for e in events if e.is_vote]
        if not votes:
            return
        day = timedelta(days=1)
        before = batch.history.window_counts(
            "rater", [(e.rater_hash, e.at - day, e.at) for e in votes], batch.ids, votes=True
        )
        own: dict[str, list[datetime]] = {}
        for e in votes:
            own.setdefault(e.rater_hash, []).append(e.at)
        for found in own.values():
            found.sort()
        state["votes_24h"] = {
            e.id: earlier
            + bisect_right(own[e.rater_hash], e.at)
            - bisect_right(own[e.rater_hash], e.at - day)
            for e, earlier in zip(votes, before, strict=True)
        }
        # The sequential test, vote by vote in event order, from what the database already holds.
        pairs = {(lo, hi) for e in votes for lo, hi, _ in e.votes}
        consensus = batch.history.consensus(pairs) if pairs else {}
        running = dict(
            batch.history.rater_fisher(
                {e.rater_hash for e in votes}, min(e.id for e in votes), batch.ids
            )
        )
        for e in sorted(votes, key=lambda e: e.id):
            m, j = running.get(e.rater_hash, (0.0, 0))
            values = []
            for lo, hi, outcome in e.votes:
                p = vote_p_value(outcome, consensus.get((lo, hi), (0, 0, 0)))
                value = None if p is None else -2 * math.log(max(p, 1e-12))
                values.append(value)
                if value is not None:
                    m, j = m + value, j + 1
            running[e.rater_hash] = (m, j)
            state["logp"][e.id] = values
            if j >= conf.get("OUTLIER_MIN_RATER_VOTES"):
                state["test"][e.id] = (outlier_p(m, j), j)

    def check(self, ctx: Context) -> FilterResult:
        event = ctx.event
        if not event.rater_hash:
            return FilterResult.clean()
        state = ctx.state[self.name]
        known = state["reputation"].get(event.rater_hash) or {}
        trust = float(known.get("trust", 1.0))
        reasons = []
        cap = state["caps"].get(event.source_id, conf.get("DAILY_VOTE_CAP"))
        votes = state["votes_24h"].get(event.id, 0)
        if cap and votes > cap:
            reasons.append(
                Reason(
                    "reputation.daily_cap",
                    f"This rater cast {votes} votes within a day (cap {cap}).",
                )
            )
        test = state["test"].get(event.id)
        if test is not None and test[0] < alpha_at(test[1]):
            reasons.append(
                Reason(
                    "reputation.outlier",
                    f"This rater's {test[1]} votes disagree with the consensus of each model pair beyond chance (p = {test[0]:.1e}).",
                )
            )
            trust = min(trust, 0.2)
        if (
            trust < conf.get("LOW_TRUST")
            and known.get("events", 0) >= conf.get("LOW_TRUST_MIN_EVENTS")
            and not reasons
        ):
            reasons.append(
                Reason(
                    "reputation.low_trust",
                    f"Most of this rater's earlier feedback was held back (trust {trust:.2f}).",
                )
            )
        if not reasons:
            return FilterResult(action=PASS, trust=trust)
        return FilterResult(action=QUARANTINE, score=0.6, reasons=reasons, trust=trust)


FILTER = ReputationFilter()
