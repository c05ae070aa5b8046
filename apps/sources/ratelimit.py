"""Fixed-window rate limits per key and per rater, counted in events per minute.

With Redis configured as the cache, counts are shared by every web process (one pipelined
round trip per request); embedded, they live in the web process's memory."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from django.core.cache import cache

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0


def _window() -> tuple[int, int]:
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))
    return window, retry_after


def _redis_client():  # type: ignore[no-untyped-def]
    backend = getattr(cache, "_cache", None)
    get_client = getattr(backend, "get_client", None)
    return get_client(write=True) if get_client else None


def _incr_many(costs: dict[str, int]) -> dict[str, int]:
    """Add COSTS to their counters; return the new totals."""
    client = _redis_client()
    if client is not None:
        pipe = client.pipeline(transaction=False)
        for name, cost in costs.items():
            pipe.incrby(name, cost)
            pipe.expire(name, WINDOW_SECONDS * 2)
        results = pipe.execute()
        return {name: int(results[2 * i]) for i, name in enumerate(costs)}
    totals = {}
    for name, cost in costs.items():
        cache.add(name, 0, WINDOW_SECONDS * 2)
        try:
            totals[name] = cache.incr(name, cost)
        except ValueError:  # expired between add and incr
            cache.set(name, cost, WINDOW_SECONDS * 2)
            totals[name] = cost
    return totals


def _decr_many(costs: dict[str, int]) -> None:
    client = _redis_client()
    if client is not None:
        pipe = client.pipeline(transaction=False)
        for name, cost in costs.items():
            pipe.decrby(name, cost)
        pipe.execute()
        return
    for name, cost in costs.items():
        try:
            cache.decr(name, cost)
        except ValueError:
            pass  # the window expired: nothing left to give back


def check_key(*, key_id: int, limit: int, cost: int) -> Verdict:
    """Charge COST events to the key; refuse (and charge nothing) over LIMIT per minute."""
    if limit <= 0 or cost <= 0:
        return Verdict(True)
    window, retry_after = _window()
    name = f"rl:key:{key_id}:{window}"
    total = _incr_many({name: cost})[name]
    if total > limit:
        _decr_many({name: cost})
        return Verdict(False, retry_after)
    return Verdict(True)


def check_raters(*, source_id: int, limit: int, raters: list[str]) -> tuple[set[str], int]:
    """Charge one event per item to each rater; return the raters over LIMIT (their events are
    refused and not charged) and the Retry-After for them."""
    counts = Counter(rater for rater in raters if rater)
    if limit <= 0 or not counts:
        return set(), 0
    window, retry_after = _window()
    names = {rater: f"rl:rater:{source_id}:{rater}:{window}" for rater in counts}
    totals = _incr_many({names[r]: c for r, c in counts.items()})
    over = {rater for rater in counts if totals[names[rater]] > limit}
    if over:
        _decr_many({names[r]: counts[r] for r in over})
    return over, retry_after if over else 0
