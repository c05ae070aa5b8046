"""The rate limits' round trip to Redis overlaps the work on the events: the command leaves
before the items are validated and its answer is read after, with the same answers as checking
first, and every connection goes back to the pool. A real redis-server (test_redis_outage)."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from apps.feedback.models import Event
from apps.feedback.services import ingest
from apps.sources import ratelimit
from tests.conftest import Api, SourceWithKeys, rating
from tests.feedback.test_redis_outage import redis_server  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db


def _pool() -> Any:
    client = ratelimit._redis_client()
    assert client is not None, "the cache is not Redis"
    return client.connection_pool


def test_it_reads_the_rate_limits_answer_after_validating_the_event(
    redis_server: Any,  # noqa: F811
    api: Api,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert api.post(rating(id="warm")).status_code == 201
    order: list[str] = []
    real_validate, connection_class = ingest.validate_event, _pool().connection_class
    real_read = connection_class.read_response

    def validate(item: Any) -> Any:
        order.append("validate")
        return real_validate(item)

    def read(self: Any, *args: Any, **kwargs: Any) -> Any:
        order.append("redis answer")
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(ingest, "validate_event", validate)
    monkeypatch.setattr(connection_class, "read_response", read)

    assert api.post(rating(id="overlapped")).status_code == 201
    assert order == ["validate", "redis answer"]


def test_the_answers_are_those_of_checking_first_and_no_connection_stays_out(
    redis_server: Any,  # noqa: F811
    make_source: Any,
    client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src: SourceWithKeys = make_source("tight", rate_limit_per_minute=3)
    api = Api(client, src.secret)

    stored = api.post(rating(id="one"))
    invalid = api.post(rating(id="two", rating=7))
    batch_over = api.post([rating(id=f"b-{n}") for n in range(5)])
    last = api.post(rating(id="three"))
    over = api.post(rating(id="four", rating=7))  # the key's limit, before the field error

    assert stored.status_code == 201
    assert invalid.status_code == 400 and "rating" in invalid.json()["error"]["fields"]
    assert batch_over.status_code == 429 and batch_over["Retry-After"]
    assert last.status_code == 201
    assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limited"
    assert set(Event.objects.values_list("client_id", flat=True)) == {"one", "three"}

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug while preparing the events")

    monkeypatch.setattr(ingest, "_prepare", broken)
    roomy = Api(client, make_source("roomy").secret)
    assert roomy.post(rating(id="five")).status_code == 500
    assert not _pool()._in_use_connections


def test_it_answers_as_usual_when_redis_lost_the_rate_limit_script(
    redis_server: Any,  # noqa: F811
    api: Api,
) -> None:
    assert api.post(rating(id="before")).status_code == 201
    redis.Redis.from_url(redis_server.url(1)).script_flush()

    response = api.post(rating(id="after-flush"))

    assert response.status_code == 201, response.content
    assert ratelimit.redis_unreachable_since() is None
    assert not _pool()._in_use_connections
