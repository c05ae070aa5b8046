"""Rate limits per key and per rater, set per source: over the limit is 429 with Retry-After and
nothing stored; in a batch, the rater's extra items get item-level `rate_limited` errors.
With CACHE_URL=redis://… the counters live in Redis, otherwise in process memory."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from apps.feedback.models import Event
from apps.sources import ratelimit
from tests.conftest import Api, SourceWithKeys, rating


@pytest.fixture
def limited(make_source: Any) -> Any:
    def make(
        name: str = "limited", *, per_key: int = 60_000, per_rater: int = 600, **fields: Any
    ) -> SourceWithKeys:
        return make_source(
            name, rate_limit_per_minute=per_key, rater_rate_limit_per_minute=per_rater, **fields
        )

    return make


@pytest.fixture
def next_minute(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Move the rate-limit clock on by whole windows."""
    real = ratelimit._window

    def advance(windows: int = 1) -> None:
        monkeypatch.setattr(ratelimit, "_window", lambda: (real()[0] + windows, real()[1]))

    return advance


def _assert_429(response: Any) -> None:
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "rate_limited"
    assert "nothing was stored" in response.json()["error"]["message"]
    assert 1 <= int(response["Retry-After"]) <= 60


# --- per key ---------------------------------------------------------------------------------------


def test_a_key_over_its_limit_gets_429_with_retry_after_and_nothing_is_stored(
    limited: Any, client: Client
) -> None:
    source = limited(per_key=3)
    api = Api(client, source.secret)
    assert [api.post(rating(id=f"e{i}", rater=f"u{i}")).status_code for i in range(3)] == [201] * 3

    response = api.post(rating(id="e3", rater="u3"))

    _assert_429(response)
    assert "limit of 3 events per minute" in response.json()["error"]["message"]
    assert Event.objects.count() == 3
    assert not Event.objects.filter(client_id="e3").exists()


def test_a_batch_is_charged_per_event_and_refused_whole(limited: Any, client: Client) -> None:
    api = Api(client, limited(per_key=5).secret)
    assert api.post([rating(id=f"a{i}", rater=f"u{i}") for i in range(4)]).status_code == 207

    refused = api.post([rating(id=f"b{i}", rater=f"u{i}") for i in range(2)])

    _assert_429(refused)
    assert Event.objects.count() == 4


def test_a_refused_request_is_not_charged(limited: Any, client: Client) -> None:
    api = Api(client, limited(per_key=5).secret)
    api.post([rating(id=f"a{i}", rater=f"u{i}") for i in range(4)])
    assert api.post([rating(id=f"b{i}", rater=f"u{i}") for i in range(2)]).status_code == 429

    response = api.post(rating(id="last", rater="u9"))

    assert response.status_code == 201
    assert Event.objects.count() == 5


def test_a_batch_larger_than_the_limit_is_told_to_split(limited: Any, client: Client) -> None:
    response = Api(client, limited(per_key=3).secret).post(
        [rating(id=f"e{i}", rater=f"u{i}") for i in range(4)]
    )

    _assert_429(response)
    assert "split it" in response.json()["error"]["message"]
    assert Event.objects.count() == 0


def test_the_limit_is_counted_per_key(limited: Any, client: Client) -> None:
    source = limited(per_key=1, allowed_origins=["https://chat.example.org"])
    assert Api(client, source.secret).post(rating(id="a", rater="u1")).status_code == 201
    assert Api(client, source.secret).post(rating(id="b", rater="u2")).status_code == 429

    response = Api(client, source.publishable).post(
        rating(id="c", rater="u3"), origin="https://chat.example.org"
    )

    assert response.status_code == 201


def test_one_sources_traffic_does_not_use_up_anothers_limit(limited: Any, client: Client) -> None:
    busy, quiet = limited("busy", per_key=1), limited("quiet", per_key=1)
    Api(client, busy.secret).post(rating(id="a"))
    assert Api(client, busy.secret).post(rating(id="b")).status_code == 429

    assert Api(client, quiet.secret).post(rating(id="a")).status_code == 201


def test_the_limit_resets_in_the_next_minute(
    limited: Any, client: Client, next_minute: Any
) -> None:
    api = Api(client, limited(per_key=1).secret)
    api.post(rating(id="a"))
    assert api.post(rating(id="b")).status_code == 429

    next_minute()

    assert api.post(rating(id="b")).status_code == 201


def test_a_limit_of_zero_means_unlimited(limited: Any, client: Client) -> None:
    api = Api(client, limited(per_key=0, per_rater=0).secret)

    statuses = [api.post(rating(id=f"e{i}")).status_code for i in range(5)]
    batch = api.post([rating(id=f"b{i}") for i in range(700)])

    assert statuses == [201] * 5
    assert batch.json()["summary"] == {"accepted": 700}


def test_junk_counts_against_the_key_limit_too(limited: Any, client: Client) -> None:
    api = Api(client, limited(per_key=1).secret)
    api.post(rating(id="a"))

    response = api.post({"not": "an event"})

    assert response.status_code == 429


# --- per rater -------------------------------------------------------------------------------------


def test_a_rater_over_the_limit_gets_429_while_other_raters_go_on(
    limited: Any, client: Client
) -> None:
    api = Api(client, limited(per_rater=2).secret)
    assert [api.post(rating(id=f"a{i}", rater="ann")).status_code for i in range(2)] == [201, 201]

    response = api.post(rating(id="a2", rater="ann"))

    _assert_429(response)
    assert "limit of 2 events per minute" in response.json()["error"]["fields"]["rater"][0]
    assert api.post(rating(id="b0", rater="bob")).status_code == 201
    assert sorted(Event.objects.values_list("client_id", flat=True)) == ["a0", "a1", "b0"]


def test_in_a_batch_the_raters_extra_items_get_item_errors_and_the_rest_is_stored(
    limited: Any, client: Client
) -> None:
    api = Api(client, limited(per_rater=2).secret)
    batch = [
        rating(id="a0", rater="ann"),
        rating(id="b0", rater="bob"),
        rating(id="a1", rater="ann"),
        rating(id="a2", rater="ann"),
        rating(id="n0", rater=None),
    ]

    response = api.post(batch)

    assert response.status_code == 207
    assert 1 <= int(response["Retry-After"]) <= 60
    results = response.json()["results"]
    assert [r["status"] for r in results] == [
        "accepted",
        "accepted",
        "accepted",
        "error",
        "accepted",
    ]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert results[3]["code"] == "rate_limited"
    assert results[3]["client_id"] == "a2"
    assert "rater" in results[3]["errors"]
    assert response.json()["summary"] == {"accepted": 4, "error": 1}
    assert sorted(Event.objects.values_list("client_id", flat=True)) == ["a0", "a1", "b0", "n0"]


def test_a_batch_within_the_rater_limits_has_no_retry_after(limited: Any, client: Client) -> None:
    response = Api(client, limited(per_rater=2).secret).post(
        [rating(id="a", rater="ann"), rating(id="b", rater="bob")]
    )

    assert response.status_code == 207
    assert not response.has_header("Retry-After")


def test_a_client_that_retries_what_was_refused_makes_progress(
    limited: Any, client: Client, next_minute: Any
) -> None:
    api = Api(client, limited(per_rater=3).secret)
    pending = [rating(id=f"e{i}", rater="importer") for i in range(8)]

    for minute in range(3):
        results = api.post(pending).json()["results"]
        pending = [pending[r["index"]] for r in results if r["status"] == "error"]
        next_minute(minute + 1)

    assert pending == []
    assert Event.objects.count() == 8


def test_the_same_rater_id_in_two_sources_is_counted_apart(limited: Any, client: Client) -> None:
    one, two = limited("one", per_rater=1), limited("two", per_rater=1)
    Api(client, one.secret).post(rating(id="a", rater="shared"))
    assert Api(client, one.secret).post(rating(id="b", rater="shared")).status_code == 429

    assert Api(client, two.secret).post(rating(id="a", rater="shared")).status_code == 201


def test_items_with_a_malformed_rater_are_judged_on_their_own_when_a_rater_is_over(
    limited: Any, client: Client
) -> None:
    api = Api(client, limited(per_rater=1).secret)

    response = api.post(
        [
            rating(id="a"),
            rating(id="b"),
            rating(id="c", rater=["not", "a", "string"]),
            rating(id="d", rater={"id": 1}),
        ]
    )

    assert response.status_code == 207
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "error", "error", "error"]
    assert [r["code"] for r in results[1:]] == ["rate_limited", "invalid", "invalid"]
    assert Event.objects.count() == 1


def test_rater_ids_are_not_kept_in_clear_in_the_rate_limit_counters(
    limited: Any, client: Client
) -> None:
    Api(client, limited(per_rater=5).secret).post(rating(rater="carol@example.org"))

    backend = getattr(cache, "_cache", None)
    if hasattr(backend, "get_client"):
        keys = [key.decode() for key in backend.get_client().keys("*")]
    else:
        keys = list(backend)
    assert any(":rater:" in key for key in keys), keys
    assert not any("carol" in key for key in keys)
