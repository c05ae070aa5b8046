"""Ingest survives a Redis outage: with the Redis that holds the rate limits and the broker
stopped, POST /api/v1/feedback still stores the event and answers 201; the limits count per
process (with a warning and a metric), /readyz says `degraded`, and the workers' drain finds
the events once Redis is back. A real redis-server, started and stopped by the test."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.feedback.models import Event
from apps.site.management.commands.serve import die_with_parent
from apps.sources import ratelimit
from tests.conftest import Api, rating
from tests.core.conftest import reset_celery_connections

pytestmark = pytest.mark.django_db

REDIS_SERVER = shutil.which("redis-server")


class RedisServer:
    def __init__(self, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [REDIS_SERVER or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


@pytest.fixture
def redis_server(tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Redis of this test's own as the rate limits' cache and the Celery broker (not eager)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (scripts/services.sh install)")
    from config.celery import app

    server = RedisServer(tmp_path)
    server.start()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": server.url(1),
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    monkeypatch.setenv("CELERY_BROKER_URL", server.url(0))
    monkeypatch.setitem(app.conf, "broker_url", server.url(0))
    monkeypatch.setitem(
        app.conf, "broker_transport_options", {"max_retries": 1, "socket_connect_timeout": 1}
    )
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    monkeypatch.setattr(ratelimit.fallback, "failed_at", None)
    ratelimit._local.clear()
    reset_celery_connections()
    yield server
    server.stop()
    ratelimit._local.clear()
    monkeypatch.undo()
    reset_celery_connections()


def _fallbacks(client: Any) -> float:
    from tests.core.test_ops import scrape

    for line in scrape(client).content.decode().splitlines():
        if line.startswith("sinkhole_ratelimit_fallback_total "):
            return float(line.split()[1])
    return 0.0


def test_with_redis_stopped_an_event_is_still_stored_and_answered_201(
    redis_server: Any, make_source: Any, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    api = Api(client, make_source("outage").secret)
    assert api.post(rating(id="before")).status_code == 201
    assert client.get("/readyz").json() == {"status": "ok"}
    fallbacks = _fallbacks(client)

    redis_server.stop()
    with caplog.at_level(logging.WARNING):
        started = time.monotonic()
        response = api.post(rating(id="during", rater="u2"))
        took = time.monotonic() - started

    assert response.status_code == 201, response.content
    assert response.json()["client_id"] == "during"
    assert Event.objects.filter(client_id="during").exists()
    assert took < 5, f"a request waited {took:.1f}s on the dead Redis"
    assert any("counting per process" in r.getMessage() for r in caplog.records)
    assert _fallbacks(client) > fallbacks
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert {p.split(":")[0] for p in ready.json()["problems"]} == {"broker", "cache"}


def test_with_redis_stopped_the_limits_still_hold_per_process(
    redis_server: Any, make_source: Any, client: Any
) -> None:
    source = make_source("outage-limited", rate_limit_per_minute=2)
    api = Api(client, source.secret)
    redis_server.stop()

    answers = [api.post(rating(id=f"e{i}", rater=f"u{i}")).status_code for i in range(3)]

    assert answers == [201, 201, 429]
    assert Event.objects.filter(source=source.source).count() == 2


def test_when_redis_is_back_the_limits_count_in_it_again(
    redis_server: Any, make_source: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = Api(client, make_source("outage-back").secret)
    redis_server.stop()
    assert api.post(rating(id="during")).status_code == 201
    assert ratelimit.redis_unreachable_since() is not None

    redis_server.start()
    monkeypatch.setattr(ratelimit, "RETRY_REDIS_AFTER_S", 0.0)
    assert api.post(rating(id="after", rater="u2")).status_code == 201

    assert ratelimit.redis_unreachable_since() is None
    assert client.get("/readyz").json() == {"status": "ok"}
