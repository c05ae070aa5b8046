"""Fixed-window rate limits per key and per rater, counted in events per minute.

With Redis configured as the cache, counts are shared by every web process (one round trip
per check: a small Lua script increments every counter and sets its expiry); embedded, they
live in the web process's memory.

When Redis does not answer, each process counts in its own memory instead (the same limits,
per process: with N web processes a client may get up to N times its limit through) and says
so: a warning in the log (at most one a minute per process), the Prometheus counter
`sinkhole_ratelimit_fallback_total`, and `/readyz` answering `degraded`. Ingest goes on: an
outage of Redis never refuses or loses an event. Redis is tried again after a few seconds."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache

from apps.core import metrics
from apps.sources.hashing import rater_hash

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
# After Redis failed, count locally for this long before trying it again: a request must not
# wait on a dead server each time.
RETRY_REDIS_AFTER_S = 5.0
WARN_EVERY_S = 60.0

# The per-process counters used while Redis is down.
_local = LocMemCache("sinkhole-ratelimit-fallback", {"OPTIONS": {"MAX_ENTRIES": 100_000}})


class _Fallback:
    """When Redis last failed, and when this process last warned about it."""

    def __init__(self) -> None:
        self.failed_at: float | None = None
        self.warned_at = 0.0
        self.lock = threading.Lock()

    def active(self) -> bool:
        failed = self.failed_at
        return failed is not None and time.monotonic() - failed < RETRY_REDIS_AFTER_S

    def record(self, exc: BaseException) -> None:
        now = time.monotonic()
        with self.lock:
            self.failed_at = now
            warn = now - self.warned_at >= WARN_EVERY_S
            if warn:
                self.warned_at = now
        metrics.RATELIMIT_FALLBACK.inc()
        if warn:
            logger.warning(
                "rate limits: Redis is unreachable; counting per process until it answers",
                extra={"error": f"{exc.__class__.__name__}: {exc}"},
            )

    def recovered(self) -> None:
        if self.failed_at is not None:
            with self.lock:
                self.failed_at = None
            logger.warning("rate limits: Redis answers again; counting in Redis")


fallback = _Fallback()


def redis_unreachable_since() -> float | None:
    """monotonic() time of the last Redis failure of this process while it lasts, else None."""
    return fallback.failed_at if fallback.active() else None


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0


def _window() -> tuple[int, int]:
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))
    return window, retry_after


# INCRBY then EXPIRE for every counter, in one command: a batch of 1,000 raters is one short
# request instead of a pipeline of 2,000 commands to pack and parse in Python.
_INCR_AND_EXPIRE = """
local totals = {}
for i, name in ipairs(KEYS) do
    totals[i] = redis.call('INCRBY', name, ARGV[i])
    redis.call('EXPIRE', name, ARGV[#KEYS + 1])
end
return totals
"""


def _redis_client():  # type: ignore[no-untyped-def]
    backend = getattr(cache, "_cache", None)
    get_client = getattr(backend, "get_client", None)
    if get_client is None:
        return None
    # Django builds a new client object on every get_client() (a measurable cost per request);
    # it is only a handle on the backend's connection pool, so keep one beside the backend.
    client = getattr(backend, "_sinkhole_ratelimit_client", None)
    if client is None:
        client = get_client(write=True)
        client.sinkhole_incr_and_expire = client.register_script(_INCR_AND_EXPIRE)
        client.sinkhole_check_request = client.register_script(_CHECK_REQUEST)
        backend._sinkhole_ratelimit_client = client
    return client


def _live_redis_client() -> Any:
    """The Redis client, or None where the cache is not Redis or Redis is down just now."""
    if fallback.active():
        return None
    return _redis_client()


def _memory() -> Any:
    """Where counters live without Redis: Django's cache (embedded), or this process's memory
    while Redis is down."""
    return (
        _local
        if getattr(cache, "_cache", None) is not None and hasattr(cache._cache, "get_client")
        else cache
    )


def _incr_many(costs: dict[str, int]) -> dict[str, int]:
    """Add COSTS to their counters; return the new totals."""
    client = _live_redis_client()
    if client is not None:
        names = list(costs)
        try:
            totals = client.sinkhole_incr_and_expire(
                keys=names, args=[*costs.values(), WINDOW_SECONDS * 2]
            )
        except _redis_errors() as exc:
            fallback.record(exc)
        else:
            fallback.recovered()
            return {name: int(total) for name, total in zip(names, totals, strict=True)}
    store = _memory()
    totals = {}
    for name, cost in costs.items():
        store.add(name, 0, WINDOW_SECONDS * 2)
        try:
            totals[name] = store.incr(name, cost)
        except ValueError:  # expired between add and incr
            store.set(name, cost, WINDOW_SECONDS * 2)
            totals[name] = cost
    return totals


def _decr_many(costs: dict[str, int]) -> None:
    client = _live_redis_client()
    if client is not None:
        pipe = client.pipeline(transaction=False)
        for name, cost in costs.items():
            pipe.decrby(name, cost)
        try:
            pipe.execute()
            return
        except _redis_errors() as exc:
            fallback.record(exc)
    store = _memory()
    for name, cost in costs.items():
        try:
            store.decr(name, cost)
        except ValueError:
            pass  # the window expired (or was counted in Redis): nothing left to give back


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


def check_raters(*, source_id: int, limit: int, raters: list[str]) -> tuple[dict[str, int], int]:
    """Charge one event per item to each rater, up to LIMIT per minute.

    Returns, for each rater that went over, how many of its items in this request still fit
    (the first ones, in request order; the rest are refused and not charged), and the
    Retry-After for the refused ones. A rater absent from the answer is within its limit, so a
    client that retries what was refused always makes progress."""
    counts = Counter(rater for rater in raters if rater)
    if limit <= 0 or not counts:
        return {}, 0
    window, retry_after = _window()
    names = _rater_counters(source_id, counts, window)
    totals = _incr_many({names[r]: c for r, c in counts.items()})
    fits = _rater_fits(counts, names, totals, limit)
    return fits, retry_after if fits else 0


def _rater_counters(source_id: int, counts: Counter[str], window: int) -> dict[str, str]:
    # Rater ids are personal data: the counters are named by their keyed hash, never in clear.
    return {
        rater: f"rl:rater:{source_id}:{rater_hash(source_id, rater)}:{window}" for rater in counts
    }


def _rater_fits(
    counts: Counter[str], names: dict[str, str], totals: dict[str, int], limit: int
) -> dict[str, int]:
    """From the charged totals: the raters over LIMIT, with how many of their items fit; what
    did not fit is given back."""
    fits: dict[str, int] = {}
    for rater, cost in counts.items():
        before = totals[names[rater]] - cost
        allowed = max(0, min(cost, limit - before))
        if allowed < cost:
            fits[rater] = allowed
    if fits:
        _decr_many({names[r]: counts[r] - fits[r] for r in fits})
    return fits


# check_key, then (if the key may go on) the raters' INCRBYs, atomically: one round trip.
# Nil when the key is over its limit (its charge is given back at once), else the raters' totals.
_CHECK_REQUEST = """
local ttl, key_cost, first = ARGV[1], tonumber(ARGV[2]), 1
if key_cost > 0 then
    local total = redis.call('INCRBY', KEYS[1], key_cost)
    redis.call('EXPIRE', KEYS[1], ttl)
    if total > tonumber(ARGV[3]) then
        redis.call('DECRBY', KEYS[1], key_cost)
        return false
    end
    first = 2
end
local totals = {}
for i = first, #KEYS do
    totals[#totals + 1] = redis.call('INCRBY', KEYS[i], ARGV[4 + i - first])
    redis.call('EXPIRE', KEYS[i], ttl)
end
return totals
"""


def check_request(
    *, key_id: int, key_limit: int, cost: int, source_id: int, rater_limit: int, raters: list[str]
) -> tuple[Verdict, dict[str, int], int]:
    """`check_key`, then, if the key may go on, `check_raters` (nothing is charged to the raters
    of a refused request): the same answers, in one round trip to Redis where there are two."""
    client = _live_redis_client()
    if client is None:
        verdict = check_key(key_id=key_id, limit=key_limit, cost=cost)
        if not verdict.allowed:
            return verdict, {}, 0
        return (verdict, *check_raters(source_id=source_id, limit=rater_limit, raters=raters))
    plan = _Plan.of(key_id, key_limit, cost, source_id, rater_limit, raters)
    if plan is None:
        return Verdict(True), {}, 0
    try:
        totals = client.sinkhole_check_request(keys=plan.keys, args=plan.args)
    except _redis_errors() as exc:
        fallback.record(exc)
        return check_request(
            key_id=key_id,
            key_limit=key_limit,
            cost=cost,
            source_id=source_id,
            rater_limit=rater_limit,
            raters=raters,
        )
    fallback.recovered()
    return plan.answer(totals)


@dataclass(frozen=True)
class _Plan:
    """What check_request sends to Redis for one request, and how it reads the answer."""

    keys: list[str]
    args: list[int]
    names: dict[str, str]
    counts: Counter[str]
    rater_limit: int
    retry_after: int

    @classmethod
    def of(
        cls,
        key_id: int,
        key_limit: int,
        cost: int,
        source_id: int,
        rater_limit: int,
        raters: list[str],
    ) -> _Plan | None:
        """None when there is nothing to check (no limits, no raters)."""
        window, retry_after = _window()
        check_the_key = key_limit > 0 and cost > 0
        counts = Counter(rater for rater in raters if rater) if rater_limit > 0 else Counter()
        if not check_the_key and not counts:
            return None
        names = _rater_counters(source_id, counts, window)
        keys = ([f"rl:key:{key_id}:{window}"] if check_the_key else []) + list(names.values())
        args = [WINDOW_SECONDS * 2, cost if check_the_key else 0, key_limit, *counts.values()]
        return cls(keys, args, names, counts, rater_limit, retry_after)

    def answer(self, totals: list[Any] | None) -> tuple[Verdict, dict[str, int], int]:
        if totals is None:
            return Verdict(False, self.retry_after), {}, 0
        fits = _rater_fits(
            self.counts,
            self.names,
            dict(zip(self.names.values(), map(int, totals), strict=True)),
            self.rater_limit,
        )
        return Verdict(True), fits, self.retry_after if fits else 0


class PendingCheck:
    """check_request's answer, asked for now and read later (see check_request_begin)."""

    def __init__(self, finish: Callable[[], tuple[Verdict, dict[str, int], int]]) -> None:
        self._finish = finish
        self._answer: tuple[Verdict, dict[str, int], int] | None = None

    def result(self) -> tuple[Verdict, dict[str, int], int]:
        """The answer check_request would have given (read once, then kept)."""
        if self._answer is None:
            self._answer = self._finish()
        return self._answer


def check_request_begin(
    *, key_id: int, key_limit: int, cost: int, source_id: int, rater_limit: int, raters: list[str]
) -> PendingCheck:
    """check_request in two halves: the command leaves for Redis now, and `result()` reads its
    answer. The caller works in between (validating and redacting the request's events), so the
    answer has usually arrived when it is read and the web process does not sleep on the round
    trip (a wake-up costs more CPU than the command). Every caller must call `result()`, also
    when its own work failed: that returns the connection to the pool.

    The same answers as check_request, and the same fallbacks: where Redis is not configured or
    is down, or anything goes wrong on the way (a dropped connection, a Redis that lost the
    script), the answer is check_request's own, computed when it is asked for."""
    whole = partial(
        check_request,
        key_id=key_id,
        key_limit=key_limit,
        cost=cost,
        source_id=source_id,
        rater_limit=rater_limit,
        raters=raters,
    )
    client = _live_redis_client()
    plan = _Plan.of(key_id, key_limit, cost, source_id, rater_limit, raters)
    if client is None or plan is None:
        return PendingCheck(whole)
    pool = client.connection_pool
    try:
        conn = pool.get_connection()
    except Exception:  # noqa: BLE001 - check_request reports it and falls back
        return PendingCheck(whole)
    try:
        script = client.sinkhole_check_request
        conn.send_command("EVALSHA", script.sha, len(plan.keys), *plan.keys, *plan.args)
    except Exception:  # noqa: BLE001 - nothing ran in Redis: check_request sends it again
        conn.disconnect()
        pool.release(conn)
        return PendingCheck(whole)

    def finish() -> tuple[Verdict, dict[str, int], int]:
        try:
            totals = conn.read_response()
        except Exception:  # noqa: BLE001 - NOSCRIPT, a timeout, a dropped connection
            # The connection may hold half an answer: never reuse it. check_request loads the
            # script where Redis lost it, retries as redis-py does, or falls back.
            conn.disconnect()
            pool.release(conn)
            return whole()
        pool.release(conn)
        fallback.recovered()
        return plan.answer(totals)

    return PendingCheck(finish)
