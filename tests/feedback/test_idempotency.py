"""A client retry with the same event id stores one event and answers `duplicate` with the
original server id: one after another, inside one batch, and from several connections at once."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import OperationalError, close_old_connections, connection
from django.test import Client

from apps.feedback.models import Event
from apps.feedback.services import ingest
from tests.conftest import Api, SourceWithKeys, preference, rating


def test_a_retry_answers_200_duplicate_with_the_original_id(api: Api) -> None:
    first = api.post(rating())
    retry = api.post(rating())

    assert first.status_code == 201
    assert retry.status_code == 200
    assert retry.json() == {
        "id": first.json()["id"],
        "client_id": "evt-1",
        "outcome": "duplicate",
        "status": "duplicate",
    }
    assert Event.objects.count() == 1


def test_a_retry_with_different_content_keeps_the_first_version(api: Api) -> None:
    original = api.post(rating(rating=1, comment="first")).json()["id"]

    retry = api.post(rating(rating=-1, comment="second"))

    assert retry.json()["status"] == "duplicate"
    assert retry.json()["id"] == original
    stored = Event.objects.get()
    assert (stored.payload["rating"], stored.payload["comment"]) == (1, "first")


def test_a_retried_batch_answers_duplicate_item_by_item_with_the_original_ids(api: Api) -> None:
    batch = [rating(id="a"), preference(id="b"), rating(id="c", rater="user-2")]
    first = api.post(batch).json()["results"]

    retry = api.post(batch).json()

    assert [r["status"] for r in retry["results"]] == ["duplicate"] * 3
    assert [r["id"] for r in retry["results"]] == [r["id"] for r in first]
    assert retry["summary"] == {"duplicate": 3}
    assert Event.objects.count() == 3


def test_a_batch_that_partly_repeats_earlier_events_stores_only_the_new_ones(api: Api) -> None:
    earlier = api.post(rating(id="old")).json()["id"]

    results = api.post([rating(id="new-1"), rating(id="old"), rating(id="new-2")]).json()["results"]

    assert [r["status"] for r in results] == ["accepted", "duplicate", "accepted"]
    assert results[1]["id"] == earlier
    assert sorted(Event.objects.values_list("client_id", flat=True)) == ["new-1", "new-2", "old"]


def test_the_same_id_twice_in_one_batch_is_stored_once(api: Api) -> None:
    results = api.post(
        [
            rating(id="twice", comment="first"),
            rating(id="other"),
            rating(id="twice", comment="second"),
        ]
    ).json()["results"]

    assert [r["status"] for r in results] == ["accepted", "accepted", "duplicate"]
    assert results[2]["id"] == results[0]["id"]
    assert Event.objects.get(client_id="twice").payload["comment"] == "first"
    assert Event.objects.count() == 2


def test_an_invalid_first_copy_does_not_make_the_valid_second_a_duplicate(api: Api) -> None:
    results = api.post([rating(id="x", rating=7), rating(id="x")]).json()["results"]

    assert [r["status"] for r in results] == ["error", "accepted"]
    assert Event.objects.get().client_id == "x"


def test_the_same_id_from_two_sources_is_two_events(
    api: Api, make_source: Any, client: Client
) -> None:
    other = make_source("other")

    ours = api.post(rating(id="shared"))
    theirs = Api(client, other.secret).post(rating(id="shared"))

    assert ours.status_code == theirs.status_code == 201
    assert ours.json()["id"] != theirs.json()["id"]
    assert Event.objects.filter(client_id="shared").count() == 2


def test_the_secret_and_publishable_keys_of_one_source_share_its_ids(
    make_source: Any, client: Client
) -> None:
    web = make_source("web", allowed_origins=["https://chat.example.org"])
    first = Api(client, web.secret).post(rating())

    retry = Api(client, web.publishable).post(rating(), origin="https://chat.example.org")

    assert retry.status_code == 200
    assert retry.json()["id"] == first.json()["id"]


def test_a_deadlock_between_overlapping_batches_is_retried_not_a_500(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Deadlock(Exception):
        sqlstate = "40P01"

    real_store = ingest._store
    calls = []

    def deadlocks_once(**kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("deadlock detected") from Deadlock()
        return real_store(**kwargs)

    # The retry lives in the service (the one ingest path), not in the view.
    monkeypatch.setattr(ingest, "_store", deadlocks_once)

    response = api.post([rating(id="a"), rating(id="b")])

    assert response.status_code == 207
    assert response.json()["summary"] == {"accepted": 2}
    assert len(calls) == 2


# --- at once, from separate connections -----------------------------------------------------------


def _at_once(bodies: list[Any], key: str) -> list[Any]:
    """POST each body from its own thread (so its own database connection), all released at once."""
    barrier = threading.Barrier(len(bodies))
    answers: list[Any] = [None] * len(bodies)

    def post(index: int, body: Any) -> None:
        client = Client(raise_request_exception=False)
        try:
            barrier.wait(timeout=30)
            answers[index] = client.post(
                "/api/v1/feedback",
                json.dumps(body),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {key}",
            )
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=post, args=(i, body)) for i, body in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(answer is not None for answer in answers), "a request thread did not answer"
    return answers


@pytest.fixture
def unlimited(make_source: Callable[..., SourceWithKeys]) -> SourceWithKeys:
    return make_source("racer", rater_rate_limit_per_minute=0)


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_one_event_store_it_once(unlimited: SourceWithKeys) -> None:
    answers = _at_once([rating(id="raced")] * 8, unlimited.secret)

    assert sorted(a.status_code for a in answers) == [200] * 7 + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert Event.objects.filter(client_id="raced").count() == 1
    assert Event.objects.get().pk == answers[0].json()["id"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_a_batch_store_each_event_once(unlimited: SourceWithKeys) -> None:
    batch = [rating(id=f"evt-{i}", rater=f"user-{i}") for i in range(200)]

    answers = _at_once([batch] * 6, unlimited.secret)

    assert all(a.status_code == 207 for a in answers)
    ids_per_answer = [[r["id"] for r in a.json()["results"]] for a in answers]
    assert all(ids == ids_per_answer[0] for ids in ids_per_answer), "retries answered different ids"
    accepted = sum(a.json()["summary"].get("accepted", 0) for a in answers)
    assert accepted == 200
    assert Event.objects.count() == 200
    assert sorted(Event.objects.values_list("id", flat=True)) == sorted(ids_per_answer[0])


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_that_overlap_in_a_different_order_store_each_event_once(
    unlimited: SourceWithKeys,
) -> None:
    ids = [f"evt-{i}" for i in range(300)]
    forward = [rating(id=i, rater=i) for i in ids]
    backward = list(reversed(forward))
    middle = [rating(id=i, rater=i) for i in ids[100:200]]

    answers = _at_once([forward, backward, middle, forward, backward], unlimited.secret)

    assert all(a.status_code == 207 for a in answers), [
        a.content[:300] for a in answers if a.status_code != 207
    ]
    server_id_of: dict[str, int] = {}
    for answer in answers:
        for result in answer.json()["results"]:
            assert result["status"] in ("accepted", "duplicate")
            assert server_id_of.setdefault(result["client_id"], result["id"]) == result["id"]
    assert Event.objects.count() == 300


@pytest.mark.django_db(transaction=True)
def test_a_real_deadlock_between_two_batches_is_retried(unlimited: SourceWithKeys) -> None:
    """Forces the interleaving that deadlocks: each batch holds one new id the other needs next."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serializes writers: two batches never hold row locks at once")
    with connection.cursor() as cursor:
        cursor.execute("""
            CREATE FUNCTION test_slow_gate() RETURNS trigger AS $$
            BEGIN
                IF NEW.client_id LIKE 'gate-%%' THEN PERFORM pg_sleep(0.5); END IF;
                RETURN NEW;
            END; $$ LANGUAGE plpgsql;
            CREATE TRIGGER test_slow_gate BEFORE INSERT ON feedback_event
                FOR EACH ROW EXECUTE FUNCTION test_slow_gate();
        """)
    try:
        one = [
            rating(id="k1", rater="a"),
            rating(id="gate-1", rater="b"),
            rating(id="k2", rater="c"),
        ]
        two = [
            rating(id="k2", rater="c"),
            rating(id="gate-2", rater="d"),
            rating(id="k1", rater="a"),
        ]

        answers = _at_once([one, two], unlimited.secret)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER test_slow_gate ON feedback_event; DROP FUNCTION test_slow_gate();"
            )

    assert [a.status_code for a in answers] == [207, 207], [a.content[:300] for a in answers]
    first, second = ({r["client_id"]: r["id"] for r in a.json()["results"]} for a in answers)
    assert (first["k1"], first["k2"]) == (second["k1"], second["k2"])
    assert Event.objects.count() == 4
