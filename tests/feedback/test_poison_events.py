"""Poison events: values a read cannot handle. Validation refuses them at the door (a 400 that
names the field), and rows already stored with them (the log is append-only) never break a read:
the list, the detail, the inbox, the event page, the quality verdict and requalify all go on.

The stored-row half matters most on PostgreSQL, where a timestamptz outside Python's datetime
range fails in the driver and a jsonb number beyond 64 bits fails in the JSON renderer."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from apps.feedback.models import Event
from apps.feedback.schema import validate_event
from tests.conftest import Api, SourceWithKeys, rating

pytestmark = pytest.mark.django_db


# --- at the door --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp",
    ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1999-12-31T23:59:59Z"],
)
def test_it_rejects_a_timestamp_outside_the_sane_range_naming_the_field(
    api: Api, timestamp: str
) -> None:
    response = api.post(rating(timestamp=timestamp))

    assert response.status_code == 400, response.content
    assert "timestamp" in response.json()["error"]["fields"]
    assert "2000-01-01" in response.json()["error"]["fields"]["timestamp"][0]
    assert Event.objects.count() == 0


def test_it_rejects_a_timestamp_more_than_a_day_ahead(api: Api) -> None:
    ahead = (datetime.now(UTC) + timedelta(days=2)).isoformat()

    response = api.post(rating(timestamp=ahead))

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["timestamp"]


def test_it_accepts_a_timestamp_within_the_range(api: Api) -> None:
    assert api.post(rating(timestamp="2001-02-03T04:05:06+14:00")).status_code == 201
    soon = (datetime.now(UTC) + timedelta(hours=12)).isoformat()
    assert api.post(rating(id="evt-2", timestamp=soon)).status_code == 201


@override_settings(FEEDBACK_TIMESTAMP_MIN="1990-01-01", FEEDBACK_TIMESTAMP_MAX_AHEAD_DAYS=30)
def test_the_timestamp_range_is_a_setting(api: Api) -> None:
    ahead = (datetime.now(UTC) + timedelta(days=20)).isoformat()

    assert api.post(rating(timestamp="1995-01-01T00:00:00Z")).status_code == 201
    assert api.post(rating(id="evt-2", timestamp=ahead)).status_code == 201
    assert api.post(rating(id="evt-3", timestamp="1989-12-31T00:00:00Z")).status_code == 400


@pytest.mark.parametrize(
    ("metadata", "path"),
    [
        ({"n": 1e20}, "metadata.n"),
        ({"n": 2**64}, "metadata.n"),
        ({"n": -(2**63) - 1}, "metadata.n"),
        ({"deep": [1, {"x": 1.5e300}]}, "metadata.deep.1.x"),
        ({"n": 9.3e18}, "metadata.n"),
    ],
)
def test_it_rejects_a_number_that_postgresql_and_orjson_cannot_both_round_trip(
    api: Api, metadata: dict[str, Any], path: str
) -> None:
    import json

    raw = json.dumps(rating(metadata=metadata)).encode()

    response = api.post(None, raw=raw)

    assert response.status_code == 400, response.content
    assert path in response.json()["error"]["fields"], response.json()
    assert Event.objects.count() == 0


def test_it_rejects_a_huge_number_anywhere_in_the_event(api: Api) -> None:
    import json

    message = {"role": "user", "content": "hi", "tool_calls": [{"index": 10**30}]}
    raw = json.dumps(rating(messages=[message])).encode()

    response = api.post(None, raw=raw)

    assert response.status_code == 400, response.content
    assert "messages.0.tool_calls.0.index" in response.json()["error"]["fields"]


def test_it_keeps_ordinary_numbers_in_metadata(api: Api) -> None:
    metadata = {"latency_ms": 812.5, "tokens": 2**62, "small": -1e-300, "big": 9.2e18}

    response = api.post(rating(metadata=metadata))

    assert response.status_code == 201, response.content
    listed = api.get("/api/v1/feedback").json()["results"][0]["payload"]["metadata"]
    assert listed["latency_ms"] == 812.5 and listed["tokens"] == 2**62


def test_the_nfc_and_nfd_forms_of_one_client_id_are_one_event(api: Api) -> None:
    nfc = unicodedata.normalize("NFC", "évènement-1")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd

    first = api.post(rating(id=nfc))
    second = api.post(rating(id=nfd))

    assert first.status_code == 201
    assert second.status_code == 200 and second.json()["status"] == "duplicate"
    assert second.json()["id"] == first.json()["id"]
    assert Event.objects.get().client_id == nfc


def test_validation_normalizes_the_id_to_nfc() -> None:
    event, errors = validate_event(rating(id=unicodedata.normalize("NFD", "café")))

    assert errors == {}
    assert event is not None and event.id == unicodedata.normalize("NFC", "café")


# --- rows already stored -------------------------------------------------------------------------


def _store_poison(src: SourceWithKeys) -> tuple[Event, Event, Event]:
    """Rows as an older Sinkhole let them in, written past today's validation."""
    common = {"source": src.source, "type": "rating", "status": "accepted", "model": "m"}
    # PostgreSQL keeps 1 BC, which Python cannot read; SQLite cannot even store it (the insert
    # fails), so there the row holds what a PostgreSQL read gives back: no time.
    before_year_one = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))
    early = Event.objects.create(
        client_id="poison-early",
        payload=rating(id="poison-early", timestamp="0001-01-01T00:00:00+14:00"),
        occurred_at=before_year_one if connection.vendor == "postgresql" else None,
        **common,
    )
    huge = Event.objects.create(
        client_id="poison-huge", payload=rating(id="poison-huge", metadata={"n": 10**20}), **common
    )
    fine = Event.objects.create(client_id="fine", payload=rating(id="fine"), **common)
    return early, huge, fine


def test_the_list_and_detail_survive_stored_poison_rows(api: Api, src: SourceWithKeys) -> None:
    early, huge, fine = _store_poison(src)

    listed = api.get("/api/v1/feedback")

    assert listed.status_code == 200, listed.content[:500]
    by_id = {item["id"]: item for item in listed.json()["results"]}
    assert set(by_id) == {early.pk, huge.pk, fine.pk}
    assert by_id[fine.pk]["payload"]["id"] == "fine"
    for event in (early, huge):
        detail = api.get(f"/api/v1/feedback/{event.pk}")
        assert detail.status_code == 200, detail.content[:500]
        assert detail.json()["id"] == event.pk


def test_the_inbox_and_event_page_survive_stored_poison_rows(
    src: SourceWithKeys, client: Any
) -> None:
    from tests.curation.conftest import user_in

    early, huge, fine = _store_poison(src)
    client.force_login(user_in("curator", "cora"))

    inbox = client.get("/inbox/")

    assert inbox.status_code == 200
    for event in (early, huge, fine):
        page = client.get(f"/events/{event.pk}/")
        assert page.status_code == 200, (event.client_id, page.content[:300])
    assert "unreadable" in client.get(f"/events/{early.pk}/").content.decode().lower()


def test_judging_and_requalify_survive_stored_poison_rows(src: SourceWithKeys) -> None:
    from apps.quality.models import Verdict
    from apps.quality.services import quality_events_judge

    early, huge, fine = _store_poison(src)

    quality_events_judge(event_ids=[early.pk, huge.pk, fine.pk])
    call_command("requalify", "--wait")

    assert Verdict.objects.filter(event_id=fine.pk, is_current=True).exists()


def test_the_command_lists_stored_poison_rows_without_editing_them(
    src: SourceWithKeys, api: Api
) -> None:
    from io import StringIO

    early, huge, fine = _store_poison(src)
    out = StringIO()

    call_command("find_unreadable_events", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[-1] == "2 unreadable event(s)"
    assert any(line.startswith(f"event {early.pk}: timestamp") for line in lines)
    assert any(line.startswith(f"event {huge.pk}: payload.metadata.n") for line in lines)
    assert Event.objects.get(pk=huge.pk).payload["metadata"] == {"n": 10**20}
    assert api.get(f"/api/v1/feedback/{huge.pk}").json()["unreadable"]
    assert api.get(f"/api/v1/feedback/{early.pk}").json()["occurred_at"] is None
    assert api.get(f"/api/v1/feedback/{fine.pk}").json()["unreadable"] == []


def test_stored_poison_rows_are_judged_rejected_and_say_why(src: SourceWithKeys) -> None:
    from apps.quality.models import Verdict
    from apps.quality.services import quality_events_judge

    early, huge, fine = _store_poison(src)

    quality_events_judge(event_ids=[early.pk, huge.pk, fine.pk])

    verdicts = {v.event_id: v for v in Verdict.objects.filter(is_current=True)}
    assert verdicts[fine.pk].status == "accepted"
    for event, problem in ((early, "timestamp"), (huge, "payload.metadata.n")):
        verdict = verdicts[event.pk]
        assert verdict.status == "rejected" and verdict.trust_weight == 0
        assert verdict.reasons[0]["code"] == "unreadable.values"
        assert problem in verdict.reasons[0]["message"]


def test_a_curator_cannot_accept_a_stored_poison_row(src: SourceWithKeys) -> None:
    from django.core.exceptions import ValidationError

    from apps.quality.models import Verdict
    from apps.quality.services import quality_events_judge, verdict_override
    from tests.curation.conftest import user_in

    early, huge, fine = _store_poison(src)
    quality_events_judge(event_ids=[huge.pk])
    curator = user_in("curator", "cora")

    with pytest.raises(ValidationError) as refused:
        verdict_override(event_id=huge.pk, status="accepted", curator=curator)

    assert "64 bits" in str(refused.value)
    assert Verdict.objects.get(event=huge, is_current=True).status == "rejected"
    verdict_override(event_id=huge.pk, status="quarantined", curator=curator)  # holding is fine


def test_a_dataset_build_leaves_stored_poison_rows_out(
    src: SourceWithKeys, settings: Any, tmp_path: Any
) -> None:
    from apps.datasets.services import dataset_version_build, dataset_version_create, recipe_create
    from apps.feedback.services.normalize import feedback_events_normalize
    from apps.quality.services import quality_events_judge

    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    early, huge, fine = _store_poison(src)
    ids = [early.pk, huge.pk, fine.pk]
    feedback_events_normalize(event_ids=ids)
    quality_events_judge(event_ids=ids)

    version = dataset_version_build(
        version_id=dataset_version_create(
            recipe=recipe_create(name="poison", kind="kto", test_fraction=0.0), enqueue=False
        ).pk
    )

    assert version.status == "succeeded", version.error
    assert version.rows == {"train": 1, "test": 0}
