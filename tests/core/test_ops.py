"""The endpoints operators and orchestrators poll: /healthz, /readyz and /metrics."""

from __future__ import annotations

import re
import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Api, rating
from tests.core.conftest import reset_celery_connections


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, keyed by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client, token: str = "scrape-token-1"):  # noqa: S107 (a test token)
    """GET /metrics as a Prometheus scraper with the metrics token."""
    from django.test import override_settings

    with override_settings(METRICS_TOKEN="scrape-token-1"):
        return client.get("/metrics", headers={"Authorization": f"Bearer {token}"})


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def broker_at(monkeypatch: pytest.MonkeyPatch):
    """Point Celery at another broker for one test (restored after)."""
    from config.celery import app

    def point(url: str, **transport_options: object) -> None:
        monkeypatch.setenv("CELERY_BROKER_URL", url)  # Celery reads it before its own settings
        monkeypatch.setitem(app.conf, "broker_url", url)
        if transport_options:
            monkeypatch.setitem(app.conf, "broker_transport_options", transport_options)
        reset_celery_connections()

    yield point
    monkeypatch.undo()
    reset_celery_connections()


def test_healthz_answers_ok_without_asking_anything_else(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_answers_ok_when_the_database_and_the_broker_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_answers_degraded_and_names_the_broker_when_redis_is_unreachable(client, broker_at):
    # Ingest still stores and acknowledges events without the broker: keep the traffic coming.
    broker_at(f"redis://127.0.0.1:{closed_port()}/0")
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert [problem.split(":")[0] for problem in body["problems"]] == ["broker"]


@pytest.mark.django_db
def test_readyz_answers_degraded_when_the_embedded_brokers_folder_is_gone(
    client, broker_at, tmp_path
):
    gone = str(tmp_path / "no-such-folder")
    broker_at("filesystem://localhost//", data_folder_in=gone, data_folder_out=gone)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert "no-such-folder" in response.json()["problems"][0]


@pytest.mark.django_db
def test_readyz_answers_503_when_the_database_does_not_answer(client, monkeypatch):
    from apps.core import health

    monkeypatch.setattr(health, "check_database", lambda: "database: OperationalError: gone")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["problems"][0].startswith("database:")


def test_readyz_only_answers_get(client):
    assert client.post("/readyz").status_code == 405


@pytest.mark.django_db
def test_metrics_count_ingested_events_by_source_and_status(make_source, client):
    api = Api(client, make_source("metrics-app").secret)
    assert api.post(rating(id="m-1")).status_code == 201
    assert api.post(rating(id="m-1")).status_code == 200  # a retry: duplicate
    assert api.post(rating(id="m-2")).status_code == 201

    response = scrape(client)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    found = samples(response.content.decode())
    assert (
        found[("sinkhole_events_total", (("source", "metrics-app"), ("status", "accepted")))] == 2
    )
    assert (
        found[("sinkhole_events_total", (("source", "metrics-app"), ("status", "duplicate")))] == 1
    )
    assert found[("sinkhole_ingest_seconds_count", ())] >= 3


@pytest.mark.django_db(transaction=True)
def test_metrics_report_the_messages_waiting_in_each_queue(
    make_source, client, live_broker, monkeypatch
):
    from config import celery

    # One hint per process per interval, however many requests: three requests, one message.
    monkeypatch.setattr(
        celery,
        "_hints",
        {"feedback.normalize_pending": celery._Hint("feedback.normalize_pending", interval=600)},
    )
    api = Api(client, make_source("queue-app").secret)
    for index in range(3):  # no worker to take the hint
        assert api.post(rating(id=f"q-{index}")).status_code == 201

    text = scrape(client).content.decode()
    found = samples(text)
    assert found[("sinkhole_queue_depth", (("queue", "ingest"),))] == 1
    assert found[("sinkhole_queue_depth", (("queue", "default"),))] == 0
    assert re.search(r"^# TYPE sinkhole_queue_depth gauge$", text, re.MULTILINE)


@pytest.mark.django_db
def test_metrics_answer_only_to_the_token_or_a_person_with_a_role(client, django_user_model):
    from django.contrib.auth.models import Group
    from django.test import override_settings

    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert refused.json()["error"]["code"] == "not_authenticated"
    assert scrape(client, token="wrong").status_code == 401
    with override_settings(METRICS_TOKEN=""):  # no token set: a bearer of nothing is no one
        assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
    assert scrape(client).status_code == 200

    person = django_user_model.objects.create_user("nobody", password="pw-nobody-1")
    client.force_login(person)
    assert client.get("/metrics").status_code == 403
    person.groups.add(Group.objects.get_or_create(name="viewer")[0])
    from apps.curation.roles import ensure_roles

    ensure_roles()
    person = django_user_model.objects.get(pk=person.pk)  # a fresh permission cache
    client.force_login(person)
    assert client.get("/metrics").status_code == 200
