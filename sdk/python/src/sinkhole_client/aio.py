"""AsyncSinkholeClient: the same API for asyncio code, on `httpx.AsyncClient` and a background task."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from sinkhole_client._core import (
    RETRIES_EXHAUSTED,
    DeliveryError,
    Item,
    Outbox,
    Outcome,
    Result,
    SinkholeError,
    Stats,
    backoff_delay,
    batch_body,
    logger,
    outcome_of_error,
    outcome_of_response,
    result_of_response,
)
from sinkhole_client._events import encode
from sinkhole_client._methods import EventMethods
from sinkhole_client.client import DEFAULT, _Default, feedback_url, request_headers

_live: weakref.WeakSet[AsyncSinkholeClient] = weakref.WeakSet()


@atexit.register
def _drain_all_at_exit() -> None:
    for client in list(_live):
        client._drain_at_exit()


async def _wait(event: asyncio.Event, timeout: float | None) -> bool:
    if timeout is None:
        await event.wait()
        return True
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:  # noqa: UP041 (not yet the built-in TimeoutError on Python 3.10)
        return False
    return True


class AsyncSinkholeClient(EventMethods[Coroutine[Any, Any, Result]]):
    """SinkholeClient for asyncio: the same parameters and behaviour, with a background task
    instead of a thread. `log_*` and `send` are plain (non-async) calls that queue and return
    the event id at once; `flush`, `aclose` and the `*_now` methods are coroutines.

    The sender task starts with the first event logged inside a running event loop (or on
    `async with`). Use the client from one event loop at a time; `log_*` may also be called
    from other threads. If the loop ends before `aclose()`, the events still queued are sent
    at interpreter exit with a short-lived blocking connection (at most `shutdown_timeout`).
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
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        """Parameters as for SinkholeClient; `http_client` is an `httpx.AsyncClient`."""
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._settled: asyncio.Event | None = None
        self._stopping = False
        self._shut = False
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
        outbox = self._outbox
        with outbox.cond:
            dropped = outbox.put(event["id"], body)
            waiting = len(outbox.pending)
        if waiting == 1 or waiting >= outbox.batch_limit:
            self._wake()
        else:
            self._running_loop_task()
        if dropped:
            outbox.report(dropped)
        return str(event["id"])

    def _running_loop_task(self) -> asyncio.AbstractEventLoop | None:
        """Make sure the sender task runs on the current thread's running loop, if there is one
        and no other loop owns the task; return that loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        task = self._task
        if task is not None and not task.done():
            if self._loop is loop:
                return loop
            if self._loop is not None and self._loop.is_running():
                return None  # another thread's loop owns the sender
        if self._stopping:
            return loop
        if self._loop is not loop and self._own_http:
            self._http = None  # its connections belong to the previous loop
        self._loop = loop
        self._wakeup = asyncio.Event()
        self._settled = asyncio.Event()
        self._task = loop.create_task(self._run(), name="sinkhole-client-sender")
        return loop

    def _wake(self) -> None:
        loop = self._running_loop_task()
        if loop is not None and loop is self._loop and self._wakeup is not None:
            self._wakeup.set()
        elif self._loop is not None and self._wakeup is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._wakeup.set)

    async def flush(self, timeout: float | None = None) -> bool:
        """Send what is queued now and wait until all of it is delivered or has failed for good
        (see `errors`); at most TIMEOUT seconds (None: no limit). True if nothing is left."""
        outbox = self._outbox
        deadline = None if timeout is None else time.monotonic() + timeout
        with outbox.cond:
            target = outbox.last_seq
            if outbox.floor() > target:
                return True
            outbox.flush_waiters += 1
        try:
            self._wake()
            while True:
                with outbox.cond:
                    if outbox.floor() > target:
                        return True
                remaining = None if deadline is None else deadline - time.monotonic()
                if (remaining is not None and remaining <= 0) or self._stopping:
                    return False
                settled = self._settled
                if settled is None or self._loop is not asyncio.get_running_loop():
                    await asyncio.sleep(0.05 if remaining is None else min(0.05, remaining))
                else:
                    settled.clear()
                    await _wait(settled, remaining)
        finally:
            with outbox.cond:
                outbox.flush_waiters -= 1

    async def aclose(self, timeout: float | None | _Default = DEFAULT) -> bool:
        """Refuse new events, deliver the queued ones (waiting at most TIMEOUT seconds, by
        default `shutdown_timeout`), stop the sender task and close the connection pool. Events
        still queued then become `undelivered` errors. True if everything was delivered."""
        outbox = self._outbox
        with outbox.cond:
            if self._shut:
                return not outbox.unsettled()
            self._shut = True
            outbox.closed = True
        _live.discard(self)
        delivered = await self.flush(
            self._shutdown_timeout if isinstance(timeout, _Default) else timeout
        )
        self._stopping = True
        task = self._task
        if task is not None and not task.done() and self._loop is asyncio.get_running_loop():
            task.cancel()  # idle, backing off, or mid-request: its batch goes back to the queue
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with outbox.cond:
            leftover = outbox.abandon(include_inflight=True)
        outbox.report(leftover)
        if self._own_http and self._http is not None:
            await self._http.aclose()
        return delivered and not leftover

    async def __aenter__(self) -> AsyncSinkholeClient:
        self._running_loop_task()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the sender task ---------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            limits = httpx.Limits(
                max_connections=self._max_connections,
                max_keepalive_connections=self._max_connections,
            )
            self._http = httpx.AsyncClient(timeout=self._timeout, limits=limits)
        return self._http

    async def _run(self) -> None:
        outbox = self._outbox
        wakeup, settled = self._wakeup, self._settled
        assert wakeup is not None and settled is not None
        try:
            while True:
                with outbox.cond:
                    wait = outbox.due_in()
                    finished = outbox.closed and not outbox.unsettled()
                    batch = outbox.take() if wait == 0.0 else None
                if finished:
                    return
                if batch is None:
                    # A log call from another thread sets `wakeup` through the loop, so it cannot
                    # slip in between the check above and this clear.
                    wakeup.clear()
                    await _wait(wakeup, wait)
                    continue
                outcome = await self._post(batch)
                with outbox.cond:
                    errors, delay = outbox.settle(outcome)
                settled.set()
                outbox.report(errors)
                if delay:
                    await asyncio.sleep(delay)
        except asyncio.CancelledError:
            with outbox.cond:
                outbox.pending.extendleft(reversed(outbox.inflight))
                outbox.inflight = []
            settled.set()
            raise

    async def _post(self, batch: list[Item]) -> Outcome:
        try:
            response = await self._client().post(
                self._url, content=batch_body(batch), headers=self._headers
            )
        except httpx.TransportError as exc:
            return outcome_of_error(batch, exc)
        except Exception as exc:  # the sender must live on; the batch stays queued
            logger.exception("Sinkhole client: unexpected error while sending")
            return outcome_of_error(batch, exc)
        return outcome_of_response(batch, response.status_code, response.headers, response.content)

    def _drain_at_exit(self) -> None:
        """At interpreter exit, after the event loop is gone: send what is left, blocking."""
        outbox = self._outbox
        with outbox.cond:
            if not outbox.unsettled() or self._shut:
                return
            self._shut = True
            outbox.closed = True
            if self._loop is not None and self._loop.is_running():
                return  # a loop still runs (in another thread) and owns the sender
            # The loop has stopped: a batch its task had in flight will never be settled there.
            outbox.pending.extendleft(reversed(outbox.inflight))
            outbox.inflight = []
        deadline = (
            None if self._shutdown_timeout is None else time.monotonic() + self._shutdown_timeout
        )
        with httpx.Client(timeout=self._timeout) as http:
            while deadline is None or time.monotonic() < deadline:
                with outbox.cond:
                    if not outbox.pending:
                        break
                    batch = outbox.take()
                try:
                    response = http.post(
                        self._url, content=batch_body(batch), headers=self._headers
                    )
                except httpx.TransportError as exc:
                    outcome = outcome_of_error(batch, exc)
                else:
                    outcome = outcome_of_response(
                        batch, response.status_code, response.headers, response.content
                    )
                with outbox.cond:
                    errors, delay = outbox.settle(outcome)
                outbox.report(errors)
                if delay:
                    left = None if deadline is None else deadline - time.monotonic()
                    time.sleep(delay if left is None else max(0.0, min(delay, left)))
        with outbox.cond:
            leftover = outbox.abandon(include_inflight=True)
        outbox.report(leftover)

    # -- sent at once ------------------------------------------------------------------------

    def _send_now(self, event: dict[str, Any]) -> Coroutine[Any, Any, Result]:
        if self.closed:
            raise RuntimeError("the Sinkhole client is closed")
        return self._send_body_now(encode(event))  # encoded here: a bad event raises at the call

    async def _send_body_now(self, body: bytes) -> Result:
        http = self._client()
        outbox = self._outbox
        attempts = (3 if outbox.max_retries is None else outbox.max_retries) + 1
        for attempt in range(1, attempts + 1):
            try:
                response = await http.post(self._url, content=body, headers=self._headers)
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
            await asyncio.sleep(
                backoff_delay(
                    attempt, retry_after, base=outbox.retry_backoff, cap=outbox.max_backoff
                )
            )
        raise AssertionError("unreachable")
