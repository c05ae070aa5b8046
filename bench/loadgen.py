"""The benchmark's load generator: a separate process that posts to the ingest API on loopback.

    loadgen.py batch  URL KEY --bodies DIR --concurrency N     closed loop, one body file per request
    loadgen.py batch  URL KEY --bodies DIR --seconds S --unique  the bodies over and over for S
                      seconds, `@@R@@` in each replaced by the request's number (new event ids)
    loadgen.py single URL KEY --events FILE --rate R --seconds S  open loop at R requests/s

It prints one JSON object on stdout. Standard library plus orjson only, so that it costs the
shared CPUs as little as possible; http.client keeps connections alive where the server lets it
(gunicorn's sync workers close after each response, and http.client then reconnects)."""

from __future__ import annotations

import argparse
import http.client
import queue
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson


class Client:
    def __init__(self, url: str, key: str) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path = (
            parts.hostname or "127.0.0.1",
            parts.port or 80,
            parts.path,
        )
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.conn: http.client.HTTPConnection | None = None
        self.retry_after = 0.0  # the last answer's Retry-After, seconds (0: none)

    def post(self, body: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.conn.request("POST", self.path, body, self.headers)
                response = self.conn.getresponse()
                data = response.read()
                try:
                    self.retry_after = float(response.getheader("Retry-After") or 0)
                except ValueError:
                    self.retry_after = 1.0
                if response.will_close:
                    self.conn.close()
                    self.conn = None
                return response.status, data
            except (ConnectionError, http.client.HTTPException):
                # A kept-alive connection the server closed meanwhile: retry once on a new one.
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def _progress(done: int, total: int, started: float) -> None:
    if sys.stderr.isatty():
        rate = done / max(time.perf_counter() - started, 1e-9)
        sys.stderr.write(f"\r    {done}/{total} requests, {rate:.1f}/s   ")
        sys.stderr.flush()


def run_batch(
    url: str, key: str, bodies: list[Path], concurrency: int, seconds: float | None = None
) -> dict[str, Any]:
    """Post every body once, CONCURRENCY at a time; count item statuses from the 207 answers.
    With SECONDS: post the bodies round and round until that time is up, each time with
    `@@R@@` replaced by the request's number (so every event id is new). A 429 is answered as
    the SDK does: that thread waits Retry-After seconds (within the time left) and sends the
    same body again."""
    loaded = [path.read_bytes() for path in bodies]
    todo: queue.Queue[int] = queue.Queue()
    for index in range(len(loaded) if seconds is None else 10_000_000):
        todo.put(index)
    deadline = None if seconds is None else time.perf_counter() + seconds
    lock = threading.Lock()
    statuses: dict[str, int] = {}
    http_codes: dict[str, int] = {}
    latencies: list[float] = []
    failures: list[str] = []
    done = [0]

    def worker() -> None:
        client = Client(url, key)
        again: int | None = None  # a body answered 429, sent again after its wait
        while True:
            if again is not None:
                index, again = again, None
            else:
                try:
                    index = todo.get_nowait()
                except queue.Empty:
                    return
            sent = time.perf_counter()
            if deadline is not None and sent >= deadline:
                return
            body = loaded[index % len(loaded)]
            if deadline is not None:
                body = body.replace(b"@@R@@", str(index).encode())
            try:
                code, data = client.post(body)
            except Exception as exc:  # noqa: BLE001 - a benchmark counts failures, it does not stop
                with lock:
                    failures.append(repr(exc))
                continue
            took = time.perf_counter() - sent
            summary = orjson.loads(data).get("summary", {}) if code == 207 else {}
            with lock:
                latencies.append(took)
                http_codes[str(code)] = http_codes.get(str(code), 0) + 1
                for status, count in summary.items():
                    statuses[status] = statuses.get(status, 0) + count
                if code not in (207, 429) and len(failures) < 5:
                    failures.append(f"HTTP {code}: {data[:300]!r}")
                done[0] += 1
                _progress(done[0], len(loaded) if deadline is None else done[0], started)
            if code == 429:
                again = index
                wait = client.retry_after or 1.0
                if deadline is not None:
                    wait = min(wait, max(0.0, deadline - time.perf_counter()))
                time.sleep(wait)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    return {
        "seconds": elapsed,
        "requests": len(latencies),
        "http": http_codes,
        "items": statuses,
        "request_seconds": sorted(latencies),
        "failures": failures,
    }


def run_single(
    url: str,
    key: str,
    events: list[bytes],
    rate: float,
    seconds: float,
    threads: int,
    give_up: float,
) -> dict[str, Any]:
    """Open loop: request i is due at start + i/RATE whether or not earlier ones have answered;
    latency runs from when it was due (so a stalled server is not hidden by a waiting client).
    A request still unsent GIVE_UP seconds after it was due is dropped and counted: an
    overloaded server then ends the phase in time, and shows as drops instead of a backlog."""
    total = int(rate * seconds)
    due: queue.Queue[tuple[int, float] | None] = queue.Queue()
    lock = threading.Lock()
    latencies: list[float] = []
    http_codes: dict[str, int] = {}
    failures: list[str] = []
    late_starts = [0]
    dropped = [0]
    timeline: list[tuple[float, float]] = []  # (due, seconds after start; latency) per request

    def worker() -> None:
        client = Client(url, key)
        while True:
            job = due.get()
            if job is None:
                return
            index, at = job
            waited = time.perf_counter() - at
            if waited > give_up:
                with lock:
                    dropped[0] += 1
                continue
            if waited > 0.001:
                with lock:
                    late_starts[0] += 1
            try:
                code, data = client.post(events[index % len(events)])
            except Exception as exc:  # noqa: BLE001
                code, data = 0, repr(exc).encode()
            took = time.perf_counter() - at
            with lock:
                latencies.append(took)
                timeline.append((round(at - started, 4), round(took, 5)))
                http_codes[str(code)] = http_codes.get(str(code), 0) + 1
                if code not in (200, 201) and len(failures) < 5:
                    failures.append(f"HTTP {code}: {data[:300]!r}")

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    started = time.perf_counter() + 0.05
    for index in range(total):
        at = started + index / rate
        delay = at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        due.put((index, at))
        if index % 300 == 0:
            _progress(index, total, started)
    for _ in pool:
        due.put(None)
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    return {
        "seconds": elapsed,
        "requests": len(latencies),
        "http": http_codes,
        "rate": rate,
        "request_seconds": sorted(latencies),
        "failures": failures,
        "late_starts": late_starts[0],
        "dropped": dropped[0],
        "give_up_seconds": give_up,
        "timeline": sorted(timeline),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["batch", "single"])
    parser.add_argument("url")
    parser.add_argument("key")
    parser.add_argument("--bodies", type=Path, help="folder of request bodies (batch)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--events", type=Path, help="one JSON event per line (single)")
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument(
        "--unique",
        action="store_true",
        help="batch: repeat the bodies for --seconds, with @@R@@ made unique per request",
    )
    parser.add_argument(
        "--threads", type=int, default=16, help="senders (single); each keeps its connection"
    )
    parser.add_argument(
        "--give-up",
        type=float,
        default=5.0,
        help="drop a request unsent this long after it was due",
    )
    args = parser.parse_args()
    if args.mode == "batch":
        result = run_batch(
            args.url,
            args.key,
            sorted(args.bodies.glob("*.json")),
            args.concurrency,
            args.seconds if args.unique else None,
        )
    else:
        events = [line for line in args.events.read_bytes().splitlines() if line]
        result = run_single(
            args.url, args.key, events, args.rate, args.seconds, args.threads, args.give_up
        )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime  # what the load generator itself cost
    sys.stdout.buffer.write(orjson.dumps(result))


if __name__ == "__main__":
    main()
