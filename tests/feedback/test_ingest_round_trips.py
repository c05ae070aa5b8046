"""What a single event costs the web tier in round trips to PostgreSQL, and that the cheaper
path still stores every event once when the connection it reuses has gone stale."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from django.db import connection

from apps.feedback.models import Event
from apps.sources import selectors
from tests.conftest import Api, rating

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only(monkeypatch: pytest.MonkeyPatch) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the health check and the reused connection are PostgreSQL's")
    # The first request of a test process can take longer than the key is remembered (2 s):
    # here the key found by the first request serves the next, as on a warm server.
    monkeypatch.setattr(selectors, "KEY_CACHE_SECONDS", 60.0)


def _next_request() -> None:
    """What Django does when a request starts (request_started), which its test client skips:
    the next query on this connection is due a health check again."""
    connection.close_if_unusable_or_obsolete()


def _count_health_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = connection.is_usable

    def counted() -> bool:
        calls.append(1)
        return real()

    monkeypatch.setattr(connection, "is_usable", counted)
    return calls


def test_it_stores_a_single_event_on_a_reused_connection_without_a_health_check_round_trip(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert api.post(rating(id="warm")).status_code == 201  # the key is looked up and kept
    checks = _count_health_checks(monkeypatch)
    _next_request()

    response = api.post(rating(id="second"))

    assert response.status_code == 201, response.content
    assert checks == []
    assert Event.objects.filter(client_id="second").count() == 1


def _kill_backend(pid: int) -> None:
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        dbname=settings["NAME"],
        autocommit=True,
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_it_stores_a_single_event_once_when_the_database_dropped_the_reused_connection(
    api: Api, caplog: Any
) -> None:
    assert api.post(rating(id="warm")).status_code == 201
    _kill_backend(connection.connection.info.backend_pid)
    _next_request()

    response = api.post(rating(id="after-the-drop"))

    assert response.status_code == 201, response.content
    assert response.json()["outcome"] == "stored"
    assert Event.objects.filter(client_id="after-the-drop").count() == 1
    assert "inserting on a new one" in caplog.text


def test_a_batch_arriving_after_the_database_dropped_the_connection_is_stored_once(
    api: Api,
) -> None:
    assert api.post(rating(id="warm")).status_code == 201
    _kill_backend(connection.connection.info.backend_pid)
    _next_request()

    response = api.post([rating(id="b-1"), rating(id="b-2")])

    assert response.status_code == 207, response.content
    assert [r["outcome"] for r in response.json()["results"]] == ["stored", "stored"]
    assert Event.objects.filter(client_id__in=["b-1", "b-2"]).count() == 2
