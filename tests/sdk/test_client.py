"""The Python SDK (sdk/python, `sinkhole_client`) against a live Sinkhole server.

pytest-django's `live_server` serves the real app on a real port; the client talks to it over
HTTP exactly as it would in production. Outages are made with a small TCP proxy in front of the
server that the tests start, stop, or make drop the server's answer; requests are counted with
httpx event hooks on the client's side. Nothing on the server is mocked."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sinkhole_client import (
    DROPPED,
    RETRIES_EXHAUSTED,
    UNDELIVERED,
    AsyncSinkholeClient,
    DeliveryError,
    SinkholeClient,
    SinkholeError,
)

from apps.feedback.models import Event
from apps.sources.models import Source
from apps.sources.services import api_key_revoke, source_create

# Fast retries: tests wait tenths of a second, not the production half-second-to-a-minute.
FAST = {"retry_backoff": 0.02, "max_backoff": 0.2, "shutdown_timeout": 5.0}
QUESTION = "What is the capital of Australia?"


# -- helpers -----------------------------------------------------------------------------------


@dataclass
class Live:
    url: str
    source: Source
    key: str
    clients: list[SinkholeClient] = field(default_factory=list)

    def client(self, url: str | None = None, **options: Any) -> SinkholeClient:
        client = SinkholeClient(self.key, url or self.url, **{**FAST, **options})
        self.clients.append(client)
        return client

    def aclient(self, url: str | None = None, **options: Any) -> AsyncSinkholeClient:
        return AsyncSinkholeClient(self.key, url or self.url, **{**FAST, **options})

    def stored(self) -> dict[str, Event]:
        return {event.client_id: event for event in Event.objects.filter(source=self.source)}


@pytest.fixture
def live(live_server: Any, transactional_db: None) -> Iterator[Live]:
    """A source on the live server. `transactional_db` (what django_db(transaction=True) gives)
    commits for real, so the server's threads see the rows and the tests see the server's."""
    source, secret, _ = source_create(name="sdk-test")
    live = Live(live_server.url, source, secret.raw)
    yield live
    for client in live.clients:  # a test that failed half-way must not leave a sender retrying
        client.close(timeout=0)


@dataclass
class Traffic:
    """What went over the wire, seen from the client: one entry per request and per answer."""

    sizes: list[int] = field(default_factory=list)  # events in each request
    statuses: list[int] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    answered_at: list[float] = field(default_factory=list)
    clients: list[httpx.Client] = field(default_factory=list)

    def on_request(self, request: httpx.Request) -> None:
        body = json.loads(request.content)
        self.sizes.append(len(body) if isinstance(body, list) else 1)
        self.sent_at.append(time.monotonic())

    def on_response(self, response: httpx.Response) -> None:
        self.statuses.append(response.status_code)
        self.answered_at.append(time.monotonic())

    def http(self, *more_response_hooks: Callable[[httpx.Response], None]) -> httpx.Client:
        """An httpx client that records the traffic (the SDK leaves a client it is given open)."""
        client = httpx.Client(
            event_hooks={
                "request": [self.on_request],
                "response": [self.on_response, *more_response_hooks],
            }
        )
        self.clients.append(client)
        return client

    def async_http(self) -> httpx.AsyncClient:
        async def on_request(request: httpx.Request) -> None:
            self.on_request(request)

        async def on_response(response: httpx.Response) -> None:
            self.on_response(response)

        return httpx.AsyncClient(event_hooks={"request": [on_request], "response": [on_response]})


@pytest.fixture
def traffic() -> Iterator[Traffic]:
    traffic = Traffic()
    yield traffic
    for client in traffic.clients:  # idle keep-alive connections hold server threads (and their
        client.close()  # database connections) open


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Proxy:
    """A TCP proxy in front of the live server, on a port of its own. stop() takes the "server"
    down (nothing listens, open connections are cut); start() brings it back on the same port.
    With `lose_answers = n`, the next n connections forward the request, let the server answer,
    and cut the connection before the answer reaches the client."""

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lose_answers = 0
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.02)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            self._cut(sock)

    @staticmethod
    def _cut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the other side
        sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets.update((client, upstream))
                lose = self.lose_answers > 0
                self.lose_answers -= lose
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, lose), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, lose: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if lose:  # the server has answered, so it has stored the batch: cut the line
                    break
                sink.sendall(chunk)
        except OSError:
            pass  # the other direction (or stop()) closed the connection
        self._cut(source)
        self._cut(sink)


@pytest.fixture
def proxy(live: Live) -> Iterator[Proxy]:
    proxy = Proxy(live.url)
    yield proxy
    proxy.stop()


def wait_until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def log_ratings(client: SinkholeClient | AsyncSinkholeClient, n: int, **fields: Any) -> list[str]:
    return [
        client.log_rating(messages=QUESTION, response=f"Canberra ({i}).", rating=1, **fields)
        for i in range(n)
    ]


# -- delivery ----------------------------------------------------------------------------------


def test_logged_events_of_every_type_are_stored_under_the_ids_the_calls_returned(
    live: Live,
) -> None:
    with live.client() as client:
        ids = {
            "rating": client.log_rating(
                messages=[{"role": "user", "content": QUESTION}],
                response="Sydney.",
                rating=-1,
                score=2,
                reason="not_factually_correct",
                comment="It is Canberra.",
                tags=["geo"],
                metadata={"ui": "thumbs"},
                model="llama3.1:8b",
                rater="user-77",
            ),
            "preference": client.log_preference(
                messages="Say hi",
                responses=[{"model": "a", "content": "Hi!"}, "Hello."],
                choice="tie",
            ),
            "ranking": client.log_ranking(
                messages="Count", responses=["1", "2", "3"], ranking=[2, 0, 1]
            ),
            "edit": client.log_edit(
                messages="Fix it", response="teh cat", edited="the cat", id="my-own-id"
            ),
            "raw": client.send(
                {
                    "type": "rating",
                    "messages": [{"role": "user", "content": "x"}],
                    "response": "y",
                    "rating": 1,
                }
            ),
        }
        assert client.flush(timeout=5)
        assert client.errors == []
        assert client.stats.delivered == 5

    stored = live.stored()
    assert set(stored) == set(ids.values())
    assert ids["edit"] == "my-own-id"
    assert {stored[ids[kind]].type for kind in ("rating", "preference", "ranking", "edit")} == {
        "rating",
        "preference",
        "ranking",
        "edit",
    }
    rating = stored[ids["rating"]]
    assert rating.payload["rating"] == -1 and rating.payload["score"] == 2
    assert rating.payload["comment"] == "It is Canberra." and rating.model == "llama3.1:8b"
    assert rating.rater_hash and rating.rater_hash != "user-77"
    assert rating.occurred_at is not None  # the client stamps the moment of the call
    assert stored[ids["ranking"]].payload["ranking"] == [2, 0, 1]
    assert stored[ids["preference"]].payload["responses"][1] == {"content": "Hello."}


def test_events_go_in_batches_of_batch_size(live: Live, traffic: Traffic) -> None:
    with live.client(batch_size=50, flush_interval=30, http_client=traffic.http()) as client:
        ids = log_ratings(client, 120)
        assert client.flush(timeout=5)

    assert sorted(traffic.sizes) == [20, 50, 50]
    assert traffic.statuses == [207, 207, 207]
    assert set(live.stored()) == set(ids)


def test_a_partial_batch_goes_once_the_oldest_event_has_waited_flush_interval(
    live: Live, traffic: Traffic
) -> None:
    client = live.client(batch_size=100, flush_interval=0.2, http_client=traffic.http())
    started = time.monotonic()
    ids = log_ratings(client, 3)
    wait_until(lambda: client.stats.delivered == 3)  # no flush(): the interval alone sends it
    assert time.monotonic() - started >= 0.2
    assert traffic.sizes == [3]
    assert set(live.stored()) == set(ids)
    client.close()


def test_a_retry_after_a_lost_answer_stores_each_event_once(
    live: Live, proxy: Proxy, traffic: Traffic
) -> None:
    proxy.start()
    proxy.lose_answers = 2  # the server stores the batch twice over, the client never hears
    with live.client(proxy.url, batch_size=10, http_client=traffic.http()) as client:
        ids = log_ratings(client, 10)
        assert client.flush(timeout=5)
        stats = client.stats

    assert traffic.sizes == [10, 10, 10]  # the same batch, three times
    assert traffic.statuses == [207]  # only the last attempt got an answer
    assert stats.duplicates == 10 and stats.delivered == 10 and stats.failed == 0
    assert Event.objects.filter(source=live.source).count() == 10
    assert set(live.stored()) == set(ids)


def test_nothing_is_lost_while_the_server_is_down(
    live: Live, proxy: Proxy, traffic: Traffic
) -> None:
    client = live.client(proxy.url, batch_size=20, flush_interval=0.05, http_client=traffic.http())
    # Down from the start: log calls still return at once, and the sender keeps trying.
    started = time.monotonic()
    first = log_ratings(client, 30, tags=["before"])
    assert time.monotonic() - started < 0.5
    wait_until(lambda: client.stats.retries >= 3 * 20)
    assert not client.flush(timeout=0.1)
    assert Event.objects.filter(source=live.source).count() == 0

    proxy.start()
    assert client.flush(timeout=5)
    # Down again in the middle of the stream: the pooled connection is cut.
    proxy.stop()
    retries = client.stats.retries
    second = log_ratings(client, 25, tags=["during"])
    wait_until(lambda: client.stats.retries >= retries + 2 * 20)
    proxy.start()
    third = log_ratings(client, 5, tags=["after"])
    assert client.flush(timeout=5)
    stats = client.stats
    client.close()

    assert stats.delivered == 60 and stats.failed == 0 and stats.queued == 0
    assert Event.objects.filter(source=live.source).count() == 60
    assert set(live.stored()) == {*first, *second, *third}


def test_it_waits_out_a_429_and_then_delivers_everything(live: Live, traffic: Traffic) -> None:
    Source.objects.filter(pk=live.source.pk).update(rate_limit_per_minute=3)
    refused = threading.Event()

    def watch(response: httpx.Response) -> None:
        if response.status_code == 429 and response.headers.get("Retry-After"):
            refused.set()

    http = traffic.http(watch)
    with live.client(batch_size=2, flush_interval=30, max_backoff=0.3, http_client=http) as client:
        ids = log_ratings(client, 6)
        assert refused.wait(5), "the server never answered 429"
        Source.objects.filter(pk=live.source.pk).update(rate_limit_per_minute=0)
        assert client.flush(timeout=5)
        assert client.errors == []

    assert 429 in traffic.statuses
    for i, status in enumerate(traffic.statuses[:-1]):
        if status == 429:  # Retry-After is at least 1s here, capped by max_backoff
            assert traffic.sent_at[i + 1] - traffic.answered_at[i] >= 0.29
    assert set(live.stored()) == set(ids)


def test_a_batch_deferred_while_the_workers_are_behind_is_sent_again_and_stored(
    live: Live, traffic: Traffic
) -> None:
    from apps.feedback import signals

    # Quality's estimate (tests/quality/test_admission.py) stood in for: 10,000 events waiting
    # at 100 judged a second is 100 s behind, over the 60 s admission control allows.
    waiting, quality = [10_000], signals.pipeline_backlog.call
    signals.pipeline_backlog.provide(lambda: (waiting[0], 100.0))
    deferred = threading.Event()

    def watch(response: httpx.Response) -> None:
        if response.status_code == 429:
            response.read()
            if response.json()["error"]["code"] == "backlog" and response.headers["Retry-After"]:
                deferred.set()

    try:
        http = traffic.http(watch)
        with live.client(batch_size=3, flush_interval=30, max_backoff=0.3, http_client=http) as c:
            ids = log_ratings(c, 3)
            assert deferred.wait(5), "the server never deferred the batch"
            assert live.stored() == {}  # nothing of a deferred batch is stored
            waiting[0] = 0  # the workers caught up
            assert c.flush(timeout=5)
            assert c.errors == []
    finally:
        signals.pipeline_backlog.provide(quality)

    assert traffic.statuses[0] == 429 and traffic.statuses[-1] == 207
    assert set(live.stored()) == set(ids)


def test_events_of_a_rater_over_the_limit_are_retried_not_failed(live: Live) -> None:
    Source.objects.filter(pk=live.source.pk).update(rater_rate_limit_per_minute=2)
    with live.client(batch_size=5, flush_interval=30) as client:
        ids = log_ratings(client, 4, rater="chatty")
        others = log_ratings(client, 1, rater="quiet")  # a full batch: it goes now
        wait_until(lambda: client.stats.retries >= 2)
        # The server took what fit (the quiet rater's, maybe some of the chatty one's); the rest
        # waits in the queue, retried after Retry-After, not given up.
        stats = client.stats
        assert stats.delivered >= 1 and stats.queued >= 1 and stats.failed == 0
        Source.objects.filter(pk=live.source.pk).update(rater_rate_limit_per_minute=0)
        assert client.flush(timeout=5)
        assert client.errors == []

    assert set(live.stored()) == {*ids, *others}


# -- refusals and giving up --------------------------------------------------------------------


def test_events_the_server_refuses_are_reported_and_do_not_hold_up_the_rest(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[DeliveryError] = []
    with live.client(batch_size=10, flush_interval=30, on_error=seen.append) as client:
        good = log_ratings(client, 2)
        bad = client.send(
            {
                "type": "rating",
                "messages": [{"role": "robot", "content": "x"}],
                "response": "y",
                "rating": 1,
                "colour": "blue",
            }
        )
        more = log_ratings(client, 2)
        with caplog.at_level(logging.WARNING, logger="sinkhole_client"):
            assert client.flush(timeout=5)  # a refused event counts as settled
        stats, errors = client.stats, client.errors

    assert [error.event_id for error in seen] == [bad] == [error.event_id for error in errors]
    error = seen[0]
    assert error.code == "invalid" and error.status_code == 207
    assert {"colour", "messages.0.role"} <= set(error.fields)
    assert error.event["colour"] == "blue"
    assert bad in caplog.text
    assert stats.failed == 1 and stats.delivered == 4 and stats.retries == 0
    assert set(live.stored()) == {*good, *more}


def test_a_revoked_key_fails_every_event_at_once_without_retrying(
    live: Live, traffic: Traffic
) -> None:
    api_key_revoke(key=live.source.keys.get(kind="secret"))
    with live.client(batch_size=10, http_client=traffic.http()) as client:
        ids = log_ratings(client, 3)
        assert client.flush(timeout=5)
        errors = client.errors

    assert traffic.statuses == [401]
    assert [(e.event_id, e.code, e.status_code) for e in errors] == [
        (i, "authentication_failed", 401) for i in ids
    ]
    assert "revoked" in errors[0].message


def test_max_retries_gives_up_on_events_it_cannot_deliver(live: Live) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with live.client(dead, max_retries=2) as client:
        ids = log_ratings(client, 3)
        assert client.flush(timeout=5)
        errors, stats = client.errors, client.stats

    assert [(e.event_id, e.code) for e in errors] == [(i, RETRIES_EXHAUSTED) for i in ids]
    assert "ConnectError" in errors[0].message
    assert stats.requests == 3 and stats.failed == 3


def test_a_full_queue_drops_the_oldest_events_and_counts_them(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    client = live.client(dead, batch_size=100, flush_interval=30, max_queue=5)
    with caplog.at_level(logging.WARNING, logger="sinkhole_client"):
        ids = log_ratings(client, 8)
    assert client.stats.dropped == 3 and client.stats.queued == 5
    assert [(e.event_id, e.code) for e in client.errors] == [(i, DROPPED) for i in ids[:3]]
    assert "queue is full" in caplog.text
    client.close(timeout=0.1)
    assert [e.event_id for e in client.errors if e.code == UNDELIVERED] == ids[3:]


def test_close_reports_what_it_could_not_deliver_and_then_refuses_events(live: Live) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    seen: list[DeliveryError] = []
    client = live.client(dead, flush_interval=0.01, on_error=seen.append)
    ids = log_ratings(client, 4)
    started = time.monotonic()
    assert client.close(timeout=0.3) is False
    assert time.monotonic() - started < 2
    assert sorted(e.event_id for e in seen if e.code == UNDELIVERED) == sorted(ids)
    assert client.stats.queued == 0
    with pytest.raises(RuntimeError, match="closed"):
        log_ratings(client, 1)


@pytest.mark.parametrize(
    ("method", "fields", "message"),
    [
        ("log_rating", {"response": "r", "rating": 2}, "rating must be 1"),
        ("log_rating", {"response": "r", "rating": True}, "not True"),
        ("log_rating", {"response": "r", "score": 11}, "between 1 and 10"),
        ("log_rating", {"response": "r"}, "needs rating"),
        ("log_rating", {"response": "r", "rating": 1, "messages": []}, "non-empty"),
        ("log_rating", {"response": "r", "rating": 1, "metadata": {"at": object()}}, "JSON"),
        (
            "log_rating",
            {"response": "r", "rating": 1, "timestamp": datetime(2026, 1, 1)},
            "time zone",
        ),
        ("log_rating", {"response": "r\x00", "rating": 1}, "NUL"),
        ("log_rating", {"response": "r", "rating": 1, "id": "x" * 201}, "id must be"),
        ("log_preference", {"responses": ["a", "b"], "choice": 2}, "choice must be"),
        ("log_preference", {"responses": ["a"], "choice": 0}, "2 responses"),
        ("log_ranking", {"responses": ["a", "b", "c"], "ranking": [0, 0, 1]}, "exactly once"),
        ("log_edit", {"response": "same", "edited": "same"}, "the same"),
    ],
)
def test_impossible_events_raise_at_the_call_and_are_not_queued(
    method: str, fields: dict[str, Any], message: str
) -> None:
    client = SinkholeClient("sk-test", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ValueError, match=message):
        getattr(client, method)(**{"messages": "hi", **fields})
    with pytest.raises(ValueError, match="type must be"):
        client.send({"type": "thumbs"})
    assert client.stats.queued == 0
    assert client.close(timeout=0)


# -- sent at once ------------------------------------------------------------------------------


def test_log_now_returns_the_servers_answer_and_a_retry_is_a_duplicate(live: Live) -> None:
    with live.client() as client:
        first = client.log_rating_now(messages=QUESTION, response="Canberra.", rating=1, id="now-1")
        again = client.log_rating_now(messages=QUESTION, response="Canberra.", rating=1, id="now-1")
        edit = client.log_edit_now(messages="Fix", response="teh", edited="the")
        with pytest.raises(SinkholeError) as refused:
            client.send_now(
                {
                    "type": "rating",
                    "messages": [{"role": "user", "content": "x"}],
                    "response": "y",
                    "rating": 1,
                    "colour": "blue",
                }
            )

    assert (first.outcome, first.client_id) == ("stored", "now-1")
    assert (again.outcome, again.id) == ("duplicate", first.id)
    assert edit.outcome == "stored" and edit.id != first.id
    assert (first.status, again.status) == ("accepted", "duplicate")  # the deprecated names
    assert refused.value.status_code == 400 and "colour" in refused.value.fields
    assert set(live.stored()) == {"now-1", edit.client_id}


def test_log_now_retries_an_outage_then_raises(live: Live) -> None:
    client = live.client(f"http://127.0.0.1:{free_port()}", max_retries=2)
    with pytest.raises(SinkholeError, match="gave up after 3 attempts") as failed:
        client.log_rating_now(messages="q", response="a", rating=1)
    assert failed.value.code == RETRIES_EXHAUSTED
    client.close()


# -- threads and processes ---------------------------------------------------------------------


def test_many_threads_logging_at_once_lose_nothing(live: Live) -> None:
    client = live.client(batch_size=64, flush_interval=0.01)
    ids: list[str] = []

    def log(rater: int) -> None:
        ids.extend(log_ratings(client, 50, rater=f"user-{rater}"))

    threads = [threading.Thread(target=log, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.close(timeout=10)
    assert client.stats.delivered == 400
    assert len(set(ids)) == 400
    assert set(live.stored()) == set(ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX-only")
def test_a_forked_child_sends_its_own_events_and_not_its_parents(live: Live) -> None:
    client = live.client(flush_interval=30)
    parents = log_ratings(client, 2, tags=["parent"])
    pid = os.fork()
    if pid == 0:  # the child: log, deliver, and leave without running the parent's cleanup
        try:
            client.log_rating(messages="q", response="a", rating=1, id="from-the-child")
            delivered = client.close(timeout=5) and client.stats.delivered == 1
            os._exit(0 if delivered else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert client.close(timeout=5)
    assert client.stats.delivered == 2 and client.stats.duplicates == 0
    assert set(live.stored()) == {*parents, "from-the-child"}


EXIT_SCRIPT = """
import asyncio, sys
from sinkhole_client import AsyncSinkholeClient, SinkholeClient

key, url = sys.argv[1], sys.argv[2]
client = SinkholeClient(key, url, flush_interval=60)
for i in range(3):
    client.log_rating(messages="q", response="a", rating=1, id=f"exit-sync-{i}")

async def main():
    aclient = AsyncSinkholeClient(key, url, flush_interval=60)
    for i in range(3):
        aclient.log_rating(messages="q", response="a", rating=1, id=f"exit-async-{i}")
    await asyncio.sleep(0.01)

asyncio.run(main())  # ends without flush() or close(): the exit hooks deliver
"""


def test_the_exit_hook_delivers_what_a_script_left_queued(live: Live) -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(EXIT_SCRIPT), live.key, live.url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert set(live.stored()) == {
        f"exit-{kind}-{i}" for kind in ("sync", "async") for i in range(3)
    }


# -- asyncio -----------------------------------------------------------------------------------


def test_the_async_client_batches_and_stores_every_event(live: Live, traffic: Traffic) -> None:

    async def main() -> tuple[list[str], Any]:
        async with (
            traffic.async_http() as http,
            live.aclient(batch_size=40, flush_interval=30, http_client=http) as client,
        ):
            ids = log_ratings(client, 100)
            ids.append(
                client.log_preference(messages="Say hi", responses=["Hi!", "Hello."], choice=1)
            )
            assert await client.flush(timeout=5)
            now = await client.log_rating_now(
                messages=QUESTION, response="Canberra.", rating=1, id="anow"
            )
            return ids, now

    ids, now = asyncio.run(main())
    assert sorted(traffic.sizes) == [1, 21, 40, 40]  # three batches, then the *_now event alone
    assert now.status == "accepted"
    assert set(live.stored()) == {*ids, "anow"}


def test_the_async_client_loses_nothing_while_the_server_is_down(live: Live, proxy: Proxy) -> None:
    async def main() -> tuple[list[str], Any]:
        client = live.aclient(proxy.url, batch_size=10, flush_interval=0.05)
        ids = log_ratings(client, 25)
        while client.stats.retries < 20:  # down: the task keeps trying
            await asyncio.sleep(0.01)
        assert not await client.flush(timeout=0.1)
        proxy.start()
        assert await client.flush(timeout=5)
        proxy.stop()  # and again, mid-stream
        ids += log_ratings(client, 5)
        await asyncio.sleep(0.3)
        proxy.start()
        assert await client.aclose(timeout=5)
        return ids, client.stats

    ids, stats = asyncio.run(main())
    assert stats.delivered == 30 and stats.failed == 0
    assert Event.objects.filter(source=live.source).count() == 30
    assert set(live.stored()) == set(ids)


def test_the_async_client_accepts_events_from_other_threads(live: Live) -> None:
    async def main() -> list[str]:
        async with live.aclient(batch_size=100, flush_interval=0.05) as client:
            ids: list[str] = []
            await asyncio.to_thread(lambda: ids.extend(log_ratings(client, 5)))
            await asyncio.sleep(0)
            assert await client.flush(timeout=5)
            return ids

    ids = asyncio.run(main())
    assert set(live.stored()) == set(ids)


def test_it_reads_the_outcome_and_still_understands_an_older_servers_status() -> None:
    from sinkhole_client._core import Result, result_of_response

    new = result_of_response(201, {}, b'{"id": 7, "client_id": "a", "outcome": "held"}')
    old = result_of_response(201, {}, b'{"id": 8, "client_id": "b", "status": "accepted"}')

    assert new == Result(7, "a", "", "held")
    assert old == Result(8, "b", "accepted", "stored")
