"""What the thread-based and the asyncio clients share: the outbox (a bounded queue of encoded
events, the batch being sent, counters), how a server answer settles a batch, and backoff.

Nothing here does I/O or waits: the clients drive it. The outbox's lock is a
`threading.Condition`, held only for bookkeeping, never across a request."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

logger = logging.getLogger("sinkhole_client")

__version__ = "0.1.0"

FEEDBACK_PATH = "/api/v1/feedback"
SERVER_MAX_BATCH = 1000  # events per request the server takes
BATCH_BYTES = 4 * 1024 * 1024  # stay under the server's 5 MB per request
# What the server says happened to an event: `outcome` (this server), else the deprecated
# `status` names an older server sends (`accepted` meant stored, not a quality verdict).
OUTCOME_OF_STATUS = {"accepted": "stored", "quarantined": "held", "duplicate": "duplicate"}
STORED_OUTCOMES = ("stored", "held", "duplicate")
STORED = tuple(OUTCOME_OF_STATUS)  # deprecated: the old `status` names of a stored event

# Codes of the errors the client makes itself (the server's own codes pass through as sent).
DROPPED = "dropped"  # pushed out of a full queue
UNDELIVERED = "undelivered"  # still queued when the client closed (or the process exited)
RETRIES_EXHAUSTED = "retries_exhausted"  # max_retries attempts failed


@dataclass(frozen=True)
class Result:
    """The server's answer for one event sent with a `*_now` method."""

    id: int | None
    """The server's id of the stored event (the original's, for a duplicate)."""
    client_id: str
    """The event id the client sent."""
    status: str
    """Deprecated: the server's old name of the outcome (`accepted` meant stored, not judged)."""
    outcome: str = ""
    """`stored`, `held` (stored, held for a curator) or `duplicate` (stored before). Not a
    verdict: the server judges the event afterwards."""


@dataclass(frozen=True)
class DeliveryError:
    """An event that will not be delivered: the server refused it, or the client gave up on it."""

    event_id: str
    code: str
    """The server's code (`invalid`, `unauthorized`, …) or the client's: `dropped` (pushed out of a
    full queue), `undelivered` (still queued at close or exit), `retries_exhausted`."""
    message: str
    fields: Mapping[str, list[str]] = field(default_factory=dict)
    """Field errors by dotted path, e.g. `{"messages.0.role": ["..."]}`."""
    status_code: int | None = None
    """The HTTP status of the answer that refused it, if any."""
    body: bytes = field(default=b"", repr=False)

    @property
    def event(self) -> dict[str, Any]:
        """The event as it was queued, e.g. to keep it somewhere for later."""
        return json.loads(self.body) if self.body else {}


class SinkholeError(Exception):
    """A `*_now` call that failed: the server refused the event, or retries ran out."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str = "error",
        fields: Mapping[str, list[str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.fields = dict(fields or {})


@dataclass(frozen=True)
class Stats:
    """Counts since the client was made."""

    queued: int
    """Events waiting to be sent, or being sent now."""
    delivered: int
    """Events the server has stored (duplicates included)."""
    duplicates: int
    """Deliveries the server recognised as already stored: a retry after a lost answer."""
    failed: int
    """Events that will not be delivered (see `errors`), dropped ones included."""
    dropped: int
    """Events pushed out of a full queue."""
    requests: int
    """Requests made to the server, failed ones included."""
    retries: int
    """Times an event went back to the queue after an attempt failed."""


@dataclass(slots=True)
class Item:
    seq: int
    id: str
    body: bytes
    queued_at: float
    attempts: int = 0


@dataclass
class Outcome:
    """How one request's answer settles its batch."""

    delivered: list[tuple[Item, str]] = field(default_factory=list)
    failed: list[DeliveryError] = field(default_factory=list)
    retry: list[Item] = field(default_factory=list)
    retry_after: float | None = None
    split: bool = False
    reason: str = ""


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - datetime.now(when.tzinfo).timestamp())


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


def _error_of(data: Any, status: int) -> tuple[str, str, dict[str, list[str]]]:
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        fields = error.get("fields")
        return (
            str(error.get("code") or f"http_{status}"),
            str(error.get("message") or f"HTTP {status}"),
            fields if isinstance(fields, dict) else {},
        )
    return f"http_{status}", f"HTTP {status} without an error body", {}


def _describe(fields: Mapping[str, list[str]]) -> str:
    return "; ".join(f"{path}: {' '.join(map(str, msgs))}" for path, msgs in fields.items())


def batch_body(batch: list[Item]) -> bytes:
    return b"[" + b",".join(item.body for item in batch) + b"]"


def is_transient(status: int) -> bool:
    """Worth retrying: over a rate limit, a timeout, or the server (or a proxy) failing."""
    return status in (408, 425, 429) or status >= 500


def backoff_delay(attempt: int, retry_after: float | None, *, base: float, cap: float) -> float:
    """Seconds to wait before retry number ATTEMPT (1, 2, ...): what the server asked for
    (Retry-After, plus up to 10% so that clients spread out), else an exponential backoff with
    jitter; either capped at CAP."""
    if retry_after is not None:
        return min(cap, retry_after * random.uniform(1.0, 1.1))
    exponential = base * 2.0 ** min(max(attempt, 1) - 1, 30)
    return min(cap, exponential) * random.uniform(0.5, 1.0)


def outcome_of_error(batch: list[Item], exc: BaseException) -> Outcome:
    """A request that got no answer (refused, reset, timed out): the server may or may not have
    stored the batch; sending it again is safe because every event carries its id."""
    return Outcome(retry=list(batch), reason=f"{type(exc).__name__}: {exc}")


def outcome_of_response(
    batch: list[Item], status: int, headers: Mapping[str, str], content: bytes
) -> Outcome:
    """Settle a batch (always sent as a JSON array) by the server's answer."""
    data = _json(content)
    retry_after = parse_retry_after(headers.get("retry-after"))
    results = data.get("results") if isinstance(data, dict) else None
    if status == 207 and isinstance(results, list):
        by_index = {r.get("index"): r for r in results if isinstance(r, dict)}
        outcome = Outcome(retry_after=retry_after, reason="some events were over a rate limit")
        for index, item in enumerate(batch):
            result = by_index.get(index, {})
            state = outcome_of(result)
            if state in STORED_OUTCOMES:
                outcome.delivered.append((item, state))
            elif state == "error" and result.get("code") != "rate_limited":
                errors = result.get("errors")
                fields: dict[str, list[str]] = errors if isinstance(errors, dict) else {}
                code = str(result.get("code") or "invalid")
                message = f"the server refused the event ({code}): {_describe(fields)}".rstrip(": ")
                outcome.failed.append(
                    DeliveryError(item.id, code, message, fields, status, item.body)
                )
            else:  # over the rater's rate limit (nothing stored), or missing from the answer
                outcome.retry.append(item)
        return outcome
    if status == 413 and len(batch) > 1:
        return Outcome(retry=list(batch), split=True, reason="the batch was too large")
    if is_transient(status) or 200 <= status < 300:
        # A 2xx without per-item results is not the feedback API answering (a captive proxy?):
        # nothing says the events were stored, so they stay queued.
        code, message, _ = _error_of(data, status)
        return Outcome(
            retry=list(batch), retry_after=retry_after, reason=f"HTTP {status}: {message}"
        )
    code, message, fields = _error_of(data, status)
    failed = [DeliveryError(item.id, code, message, fields, status, item.body) for item in batch]
    return Outcome(failed=failed, reason=message)


class Outbox:
    """The queue of encoded events, the batch in flight, and the counters. Every method but
    `report` must be called with `cond` held."""

    def __init__(
        self,
        *,
        batch_size: int,
        flush_interval: float,
        max_queue: int,
        max_retries: int | None,
        retry_backoff: float,
        max_backoff: float,
        on_error: Callable[[DeliveryError], object] | None,
        keep_errors: int = 1000,
    ) -> None:
        if not 1 <= batch_size <= SERVER_MAX_BATCH:
            raise ValueError(f"batch_size must be between 1 and {SERVER_MAX_BATCH}")
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        if flush_interval < 0 or retry_backoff < 0 or max_backoff < 0:
            raise ValueError("flush_interval, retry_backoff and max_backoff must not be negative")
        if max_retries is not None and max_retries < 0:
            raise ValueError("max_retries must be None (retry until delivered) or >= 0")
        self.cond = threading.Condition()
        self.batch_size = batch_size
        self.batch_limit = batch_size  # lowered for good when the server answers 413
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff
        self.on_error = on_error
        self.pending: deque[Item] = deque()
        self.inflight: list[Item] = []
        self.last_seq = 0
        self.flush_waiters = 0
        self.closed = False
        self.failures = 0  # consecutive attempts that ended in a retry
        self.resend = False  # events came back from a failed attempt: send once the backoff is over
        self.errors: deque[DeliveryError] = deque(maxlen=keep_errors)
        self._counts = dict.fromkeys(
            ("delivered", "duplicates", "failed", "dropped", "requests", "retries"), 0
        )
        self._drop_warned_at = float("-inf")

    def reset_after_fork(self) -> None:
        """In a forked child: a fresh lock, and none of the parent's events (the parent sends them)."""
        self.cond = threading.Condition()
        self.pending.clear()
        self.inflight = []
        self.flush_waiters = 0

    # -- the caller's side -------------------------------------------------------------------

    def put(self, event_id: str, body: bytes) -> list[DeliveryError]:
        """Queue an event; return the events pushed out to make room (oldest first)."""
        if self.closed:
            raise RuntimeError("the Sinkhole client is closed")
        self.last_seq += 1
        self.pending.append(Item(self.last_seq, event_id, body, time.monotonic()))
        dropped = []
        while len(self.pending) > self.max_queue:
            old = self.pending.popleft()
            dropped.append(
                DeliveryError(
                    old.id,
                    DROPPED,
                    f"the queue held {self.max_queue} events; the oldest was dropped",
                    body=old.body,
                )
            )
        if dropped:
            self._counts["dropped"] += len(dropped)
            self._counts["failed"] += len(dropped)
            self.errors.extend(dropped)
            now = time.monotonic()
            if now - self._drop_warned_at >= 10:
                self._drop_warned_at = now
                logger.warning(
                    "Sinkhole client queue is full (%d events): dropping the oldest; %d dropped so far. "
                    "Is the server reachable? Raise max_queue to ride out longer outages.",
                    self.max_queue,
                    self._counts["dropped"],
                )
        return dropped

    def floor(self) -> int:
        """The lowest sequence number not yet settled (delivered or failed). The batch in flight
        and the queue are both in sequence order, and the batch is older than the queue."""
        if self.inflight:
            return self.inflight[0].seq
        if self.pending:
            return self.pending[0].seq
        return self.last_seq + 1

    def unsettled(self) -> int:
        return len(self.pending) + len(self.inflight)

    def stats(self) -> Stats:
        return Stats(queued=self.unsettled(), **self._counts)

    # -- the sender's side -------------------------------------------------------------------

    def due_in(self) -> float | None:
        """Seconds until a batch should go (0: now), or None when there is nothing to send."""
        if not self.pending or self.inflight:
            return None
        if (
            self.resend
            or self.flush_waiters
            or self.closed
            or len(self.pending) >= self.batch_limit
        ):
            return 0.0
        return max(0.0, self.pending[0].queued_at + self.flush_interval - time.monotonic())

    def take(self) -> list[Item]:
        """Move the next batch (at most batch_limit events and about 4 MB) into flight."""
        batch: list[Item] = []
        size = 2
        while self.pending and len(batch) < self.batch_limit:
            item = self.pending[0]
            if batch and size + len(item.body) + 1 > BATCH_BYTES:
                break
            batch.append(self.pending.popleft())
            size += len(item.body) + 1
        self.inflight = batch
        self.resend = False
        return batch

    def settle(self, outcome: Outcome) -> tuple[list[DeliveryError], float | None]:
        """Apply a request's outcome to the batch in flight; return the errors to report and how
        long to wait before the next request (None: go on at once)."""
        self.inflight = []
        counts = self._counts
        counts["requests"] += 1
        for _, state in outcome.delivered:
            counts["delivered"] += 1
            if state == "duplicate":
                counts["duplicates"] += 1
        errors = list(outcome.failed)
        retry = []
        for item in outcome.retry:
            item.attempts += 1
            if self.max_retries is not None and item.attempts > self.max_retries:
                errors.append(
                    DeliveryError(
                        item.id,
                        RETRIES_EXHAUSTED,
                        f"gave up after {item.attempts} attempts; last: {outcome.reason}",
                        body=item.body,
                    )
                )
            else:
                retry.append(item)
        counts["retries"] += len(retry)
        counts["failed"] += len(errors)
        self.errors.extend(errors)
        # Back to the front, in order: the queue stays sorted and the oldest go first.
        self.pending.extendleft(reversed(retry))
        self.resend = bool(retry)
        delay = None
        if outcome.split:
            self.batch_limit = max(1, len(outcome.retry) // 2)
        elif outcome.retry:
            self.failures += 1
            delay = self.backoff(outcome.retry_after)
            logger.info(
                "Sinkhole: %d events will be retried in %.2fs (%s)",
                len(retry),
                delay,
                outcome.reason,
            )
        else:
            self.failures = 0
        return errors, delay

    def backoff(self, retry_after: float | None) -> float:
        return backoff_delay(
            self.failures, retry_after, base=self.retry_backoff, cap=self.max_backoff
        )

    def abandon(self, *, include_inflight: bool) -> list[DeliveryError]:
        """Give up on what is still queued (the client is closing): each becomes an error."""
        items = [*(self.inflight if include_inflight else ()), *self.pending]
        self.pending.clear()
        if include_inflight:
            self.inflight = []
        errors = [
            DeliveryError(
                item.id,
                UNDELIVERED,
                "the client closed before the event was delivered",
                body=item.body,
            )
            for item in items
        ]
        self._counts["failed"] += len(errors)
        self.errors.extend(errors)
        if errors:
            logger.warning(
                "Sinkhole client closed with %d events undelivered (see client.errors / on_error)",
                len(errors),
            )
        return errors

    # -- outside the lock --------------------------------------------------------------------

    def report(self, errors: Iterable[DeliveryError]) -> None:
        """Log errors and hand them to the on_error callback. Call without holding `cond`."""
        for error in errors:
            if error.code not in (DROPPED, UNDELIVERED):  # those were logged in bulk
                logger.warning("Sinkhole did not store event %s: %s", error.event_id, error.message)
            if self.on_error is not None:
                try:
                    self.on_error(error)
                except Exception:
                    logger.exception("Sinkhole client: the on_error callback failed")


@dataclass(frozen=True)
class Retry:
    """A `*_now` attempt worth repeating."""

    retry_after: float | None
    reason: str


def outcome_of(answer: Mapping[str, Any]) -> str:
    """An item's `outcome` from the server's answer: as sent, or from an older server's
    `status` (`error` and unknown names pass through)."""
    outcome = answer.get("outcome")
    if isinstance(outcome, str) and outcome:
        return outcome
    state = answer.get("status")
    return OUTCOME_OF_STATUS.get(state, state) if isinstance(state, str) else ""


def result_of_response(status: int, headers: Mapping[str, str], content: bytes) -> Result | Retry:
    """The server's answer to one event (sent as a JSON object): a Result, a Retry, or raise."""
    data = _json(content)
    if status in (200, 201) and isinstance(data, dict) and outcome_of(data) in STORED_OUTCOMES:
        server_id = data.get("id")
        return Result(
            server_id if isinstance(server_id, int) else None,
            str(data.get("client_id")),
            str(data.get("status") or ""),
            outcome_of(data),
        )
    code, message, fields = _error_of(data, status)
    if is_transient(status) or 200 <= status < 300:
        return Retry(parse_retry_after(headers.get("retry-after")), f"HTTP {status}: {message}")
    raise SinkholeError(message, status_code=status, code=code, fields=fields)
