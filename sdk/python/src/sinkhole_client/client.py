"""SinkholeClient: queue feedback from any thread, deliver it in batches from one background thread."""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Final

import httpx

from sinkhole_client._core import (
    FEEDBACK_PATH,
    RETRIES_EXHAUSTED,
    DeliveryError,
    Item,
    Outbox,
    Outcome,
    Result,
    SinkholeError,
    Stats,
    __version__,
    backoff_delay,
    batch_body,
    logger,
    outcome_of_error,
    outcome_of_response,
    result_of_response,
)
from sinkhole_client._events import encode
from sinkhole_client._methods import EventMethods


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default()
"""Stands for "the client's shutdown_timeout" in close()."""


def feedback_url(base_url: str) -> str:
    url = httpx.URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"base_url must be an http(s) URL such as https://sinkhole.example.org, not {base_url!r}"
        )
    return str(base_url).rstrip("/") + FEEDBACK_PATH


def request_headers(api_key: str) -> dict[str, str]:
    if not isinstance(api_key, str) or not api_key.strip():
        raise ValueError("api_key is required (a source's secret key, sk-...)")
    return {
        "Authorization": f"Bearer {api_key.strip()}",
        "Content-Type": "application/json",
        "User-Agent": f"sinkhole-client/{__version__} (python; httpx/{httpx.__version__})",
    }


_live: weakref.WeakSet[SinkholeClient] = weakref.WeakSet()


@atexit.register
def _close_all_at_exit() -> None:
    for client in list(_live):
        client.close()


class SinkholeClient(EventMethods[Result]):
    """Sends feedback to a Sinkhole server without making the caller wait.

    `log_rating`, `log_preference`, `log_ranking`, `log_edit` and `send` check the event, queue
    it and return its id; a background thread sends the queue in batches (`batch_size` events,
    or whatever is queued once the oldest has waited `flush_interval` seconds) over one pooled
    connection. Failed requests (no connection, timeouts, 429, 5xx) are retried with exponential
    backoff and jitter, honouring Retry-After, for as long as it takes (or `max_retries` times);
    every event carries its id, so a retry never stores it twice.

    Events the server refuses (invalid, a revoked key) are logged on the `sinkhole_client`
    logger, kept in `errors` and passed to `on_error`. When `max_queue` events are waiting, each
    new one pushes out the oldest: a warning, a `dropped` error and `stats.dropped` say so; log
    calls never block. `flush()` waits for delivery; `close()` (also on leaving a `with` block
    and at interpreter exit) flushes for at most `shutdown_timeout` seconds, then reports what
    is left as `undelivered`. Thread-safe; after `os.fork()` the child starts with an empty
    queue of its own.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = "http://127.0.0.1:8000",
        *,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
        timeout: float | httpx.Timeout = 10.0,
        max_retries: int | None = None,
        retry_backoff: float = 0.5,
        max_backoff: float = 60.0,
        shutdown_timeout: float | None = 10.0,
        on_error: Callable[[DeliveryError], object] | None = None,
        max_connections: int = 10,
        http_client: httpx.Client | None = None,
    ) -> None:
        """
        api_key: the source's secret key (`sk-...`).
        base_url: where Sinkhole runs.
        batch_size: events per request, at most 1,000.
        flush_interval: seconds the oldest queued event may wait for a batch to fill.
        max_queue: events held while the server is unreachable; beyond it the oldest are dropped.
        timeout: per request, seconds or an `httpx.Timeout`.
        max_retries: attempts after the first before an event is given up (`retries_exhausted`);
            None retries until delivered. `*_now` calls retry `max_retries` times (3 if None).
        retry_backoff, max_backoff: the first retry waits about `retry_backoff` seconds, each
            next one twice as long, at most `max_backoff` (which also caps Retry-After).
        shutdown_timeout: how long `close()` and the exit hook wait for delivery; None: no limit.
        on_error: called with each DeliveryError, from the sender thread (or, for `dropped`
            events, from the thread that logged).
        max_connections: the connection pool's size (the sender uses one; `*_now` calls share it).
        http_client: an `httpx.Client` to use instead of the client's own (it is not closed).
        """
        self._url = feedback_url(base_url)
        self._headers = request_headers(api_key)
        self._outbox = Outbox(
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_queue=max_queue,
            max_retries=max_retries,
            retry_backoff=retry_backoff,
            max_backoff=max_backoff,
            on_error=on_error,
        )
        self._timeout = timeout
        self._max_connections = max_connections
        self._shutdown_timeout = shutdown_timeout
        self._own_http = http_client is None
        self._http = http_client
        self._http_lock = threading.Lock()
        # Made here, not lazily on the sender thread: httpx imports parts of itself on first use,
        # and a fork() that lands in the middle of an import leaves the child a broken module.
        self._client()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._shut = False
        self._pid = os.getpid()
        _live.add(self)

    # -- state -------------------------------------------------------------------------------

    @property
    def errors(self) -> list[DeliveryError]:
        """The latest (up to 1,000) events that will not be delivered, oldest first."""
        with self._outbox.cond:
            return list(self._outbox.errors)

    @property
    def stats(self) -> Stats:
        with self._outbox.cond:
            return self._outbox.stats()

    @property
    def closed(self) -> bool:
        return self._outbox.closed

    # -- queueing ----------------------------------------------------------------------------

    def _enqueue(self, event: dict[str, Any]) -> str:
        body = encode(event)
        self._after_fork()
        outbox = self._outbox
        with outbox.cond:
            dropped = outbox.put(event["id"], body)
            self._start_sender()
            waiting = len(outbox.pending)
            # The sender sleeps until the oldest event is due; wake it only when that changes.
            if waiting == 1 or waiting >= outbox.batch_limit:
                outbox.cond.notify_all()
        if dropped:
            outbox.report(dropped)
        return str(event["id"])

    def flush(self, timeout: float | None = None) -> bool:
        """Send what is queued now and wait until all of it is delivered or has failed for good
        (see `errors`); at most TIMEOUT seconds (None: no limit). True if nothing is left."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("flush() called from the sender thread (an on_error callback?)")
        self._after_fork()
        outbox = self._outbox
        with outbox.cond:
            target = outbox.last_seq
            if outbox.floor() > target:
                return True
            if self._stop.is_set():
                return False
            self._start_sender()
            outbox.flush_waiters += 1
            outbox.cond.notify_all()
            try:
                return (
                    outbox.cond.wait_for(
                        lambda: outbox.floor() > target or self._stop.is_set(), timeout
                    )
                    and outbox.floor() > target
                )
            finally:
                outbox.flush_waiters -= 1

    def close(self, timeout: float | None | _Default = DEFAULT) -> bool:
        """Refuse new events, deliver the queued ones (waiting at most TIMEOUT seconds, by
        default `shutdown_timeout`), stop the sender and the connection pool. Events still
        queued then become `undelivered` errors. True if everything was delivered."""
        outbox = self._outbox
        with outbox.cond:
            if self._shut:
                return not outbox.unsettled()
            self._shut = True
            outbox.closed = True
            outbox.cond.notify_all()
        _live.discard(self)
        delivered = self.flush(self._shutdown_timeout if isinstance(timeout, _Default) else timeout)
        with outbox.cond:
            self._stop.set()
            outbox.cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)
        sender_alive = thread is not None and thread.is_alive()
        with outbox.cond:
            # A sender stuck in a request settles (or abandons) its own batch when it returns.
            leftover = outbox.abandon(include_inflight=not sender_alive)
        outbox.report(leftover)
        if self._own_http and self._http is not None and not sender_alive:
            self._http.close()
        return delivered and not leftover

    def __enter__(self) -> SinkholeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the sender thread -------------------------------------------------------------------

    def _after_fork(self) -> None:
        if os.getpid() == self._pid:
            return
        self._pid = os.getpid()
        self._outbox.reset_after_fork()
        self._thread = None
        self._stop = threading.Event()
        self._http_lock = threading.Lock()
        if self._own_http:
            self._http = None  # the parent's pooled connections are the parent's

    def _client(self) -> httpx.Client:
        with self._http_lock:
            if self._http is None:
                limits = httpx.Limits(
                    max_connections=self._max_connections,
                    max_keepalive_connections=self._max_connections,
                )
                self._http = httpx.Client(timeout=self._timeout, limits=limits)
            return self._http

    def _start_sender(self) -> None:
        """Start the sender thread if it is not running (call with the outbox's lock held)."""
        if self._stop.is_set() or (self._thread is not None and self._thread.is_alive()):
            return
        self._thread = threading.Thread(
            target=self._run, name="sinkhole-client-sender", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        outbox = self._outbox
        stop = self._stop
        while True:
            batch: list[Item] | None = None
            with outbox.cond:
                while not stop.is_set():
                    wait = outbox.due_in()
                    if wait == 0.0:
                        batch = outbox.take()
                        break
                    if outbox.closed and not outbox.unsettled():
                        break
                    outbox.cond.wait(wait)
            if batch is None:
                break
            outcome = self._post(batch)
            with outbox.cond:
                errors, delay = outbox.settle(outcome)
                outbox.cond.notify_all()
            outbox.report(errors)
            if delay:
                stop.wait(delay)
        with outbox.cond:
            leftover = outbox.abandon(include_inflight=True) if stop.is_set() else []
            outbox.cond.notify_all()
        outbox.report(leftover)

    def _post(self, batch: list[Item]) -> Outcome:
        try:
            response = self._client().post(
                self._url, content=batch_body(batch), headers=self._headers
            )
        except httpx.TransportError as exc:
            return outcome_of_error(batch, exc)
        except Exception as exc:  # the sender must live on; the batch stays queued
            logger.exception("Sinkhole client: unexpected error while sending")
            return outcome_of_error(batch, exc)
        return outcome_of_response(batch, response.status_code, response.headers, response.content)

    # -- sent at once ------------------------------------------------------------------------

    def _send_now(self, event: dict[str, Any]) -> Result:
        if self.closed:
            raise RuntimeError("the Sinkhole client is closed")
        body = encode(event)
        self._after_fork()
        http = self._client()
        outbox = self._outbox
        attempts = (3 if outbox.max_retries is None else outbox.max_retries) + 1
        for attempt in range(1, attempts + 1):
            try:
                response = http.post(self._url, content=body, headers=self._headers)
            except httpx.TransportError as exc:
                reason, retry_after = f"{type(exc).__name__}: {exc}", None
            else:
                answer = result_of_response(
                    response.status_code, response.headers, response.content
                )
                if isinstance(answer, Result):
                    return answer
                reason, retry_after = answer.reason, answer.retry_after
            if attempt == attempts:
                raise SinkholeError(
                    f"gave up after {attempts} attempts; last: {reason}", code=RETRIES_EXHAUSTED
                )
            time.sleep(
                backoff_delay(
                    attempt, retry_after, base=outbox.retry_backoff, cap=outbox.max_backoff
                )
            )
        raise AssertionError("unreachable")
