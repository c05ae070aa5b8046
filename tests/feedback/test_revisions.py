"""Revisions: an event may name an earlier event of its source that it revises (`supersedes`, a
changed rating). The log stays append-only; the new row links to the old one, and only the
latest revision (an event nobody supersedes) counts in datasets, leaderboards and the inbox."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection, connections

from apps.feedback.models import Event
from apps.feedback.services.ingest import feedback_ingest
from tests.conftest import Api, preference, rating


def test_it_stores_a_revision_linked_to_the_event_it_revises(api: Api) -> None:
    first = api.post(rating(id="vote-1", rating=1)).json()
    answer = api.post(rating(id="vote-1:r2", rating=-1, supersedes="vote-1"))
    assert answer.status_code == 201, answer.content
    revision = answer.json()
    assert revision["status"] == "accepted"

    old = Event.objects.get(pk=first["id"])
    new = Event.objects.get(pk=revision["id"])
    assert new.supersedes_id == old.pk
    assert old.superseded_by == new
    assert new.payload["supersedes"] == "vote-1"

    detail_old = api.get(f"/api/v1/feedback/{old.pk}").json()
    detail_new = api.get(f"/api/v1/feedback/{new.pk}").json()
    assert (detail_old["supersedes"], detail_old["superseded_by"]) == (None, new.pk)
    assert (detail_new["supersedes"], detail_new["superseded_by"]) == (old.pk, None)
    listed = {e["id"]: e for e in api.get("/api/v1/feedback").json()["results"]}
    assert listed[old.pk]["superseded_by"] == new.pk
    assert listed[new.pk]["supersedes"] == old.pk


def test_it_answers_a_retried_revision_as_a_duplicate(api: Api) -> None:
    api.post(rating(id="vote-1"))
    first = api.post(rating(id="vote-1:r2", rating=-1, supersedes="vote-1")).json()
    again = api.post(rating(id="vote-1:r2", rating=-1, supersedes="vote-1"))
    assert again.status_code == 200
    assert (again.json()["id"], again.json()["status"]) == (first["id"], "duplicate")
    assert Event.objects.count() == 2


def test_it_rejects_a_revision_of_an_event_the_source_does_not_have(
    api: Api, make_source: Any
) -> None:
    other = make_source("other-app")
    Api(api.client, other.secret).post(rating(id="elsewhere"))
    for missing in ("never-sent", "elsewhere"):  # another source's event is not this source's
        answer = api.post(rating(id=f"r-{missing}", supersedes=missing))
        assert answer.status_code == 400
        message = answer.json()["error"]["fields"]["supersedes"][0]
        assert "names no event of this source" in message
    assert Event.objects.filter(supersedes__isnull=False).count() == 0
    assert not Event.objects.filter(client_id__startswith="r-").exists()


def test_it_rejects_a_revision_of_another_raters_event(api: Api) -> None:
    api.post(rating(id="vote-1", rater="alice"))
    answer = api.post(rating(id="vote-1:r2", rater="mallory", rating=-1, supersedes="vote-1"))
    assert answer.status_code == 400
    assert "another rater's event" in answer.json()["error"]["fields"]["supersedes"][0]
    assert not Event.objects.filter(client_id="vote-1:r2").exists()


def test_it_rejects_a_second_revision_of_one_event_and_names_the_latest(api: Api) -> None:
    api.post(rating(id="vote-1"))
    r2 = api.post(rating(id="vote-1:r2", rating=-1, supersedes="vote-1")).json()
    fork = api.post(rating(id="vote-1:fork", rating=-1, supersedes="vote-1"))
    assert fork.status_code == 400
    message = fork.json()["error"]["fields"]["supersedes"][0]
    assert f"revise the latest, event {r2['id']}" in message
    r3 = api.post(rating(id="vote-1:r3", rating=1, supersedes="vote-1:r2")).json()
    fork = api.post(rating(id="vote-1:fork", rating=-1, supersedes="vote-1"))
    assert f"revise the latest, event {r3['id']}" in fork.json()["error"]["fields"]["supersedes"][0]
    assert Event.objects.count() == 3


def test_it_rejects_an_event_that_supersedes_itself(api: Api) -> None:
    answer = api.post(rating(id="vote-1", supersedes="vote-1"))
    assert answer.status_code == 400
    assert answer.json()["error"]["fields"]["supersedes"] == ["is this event's own id"]


def test_a_batch_may_hold_an_event_and_its_revisions(api: Api) -> None:
    answer = api.post(
        [
            rating(id="vote-1", rating=1),
            rating(id="vote-1:r2", rating=-1, supersedes="vote-1"),
            rating(id="vote-1:r3", rating=1, supersedes="vote-1:r2"),
            preference(id="other"),
        ]
    )
    assert answer.status_code == 207
    results = answer.json()["results"]
    assert [r["status"] for r in results] == ["accepted"] * 4
    ids = [r["id"] for r in results]
    assert Event.objects.get(pk=ids[1]).supersedes_id == ids[0]
    assert Event.objects.get(pk=ids[2]).supersedes_id == ids[1]
    assert Event.objects.get(pk=ids[3]).supersedes_id is None
    # The same batch again stores nothing and answers each item with its original id.
    again = api.post(
        [
            rating(id="vote-1", rating=1),
            rating(id="vote-1:r2", rating=-1, supersedes="vote-1"),
            rating(id="vote-1:r3", rating=1, supersedes="vote-1:r2"),
            preference(id="other"),
        ]
    ).json()["results"]
    assert [(r["status"], r["id"]) for r in again] == [("duplicate", i) for i in ids]
    assert Event.objects.count() == 4


def test_a_batch_answers_a_bad_revision_item_by_item(api: Api) -> None:
    api.post(rating(id="vote-0", rater="alice"))
    answer = api.post(
        [
            rating(id="vote-1:r2", supersedes="vote-1"),  # its target comes later: not allowed
            rating(id="vote-1"),
            rating(id="vote-0:r2", rater="bob", supersedes="vote-0"),
            rating(id="vote-1:a", rating=-1, supersedes="vote-1"),
            rating(id="vote-1:b", rating=-1, supersedes="vote-1"),  # a fork within the batch
        ]
    )
    results = answer.json()["results"]
    assert [r["status"] for r in results] == ["error", "accepted", "error", "accepted", "error"]
    assert "names no event" in results[0]["errors"]["supersedes"][0]
    assert "another rater's event" in results[2]["errors"]["supersedes"][0]
    assert "item 3 of this request already revises" in results[4]["errors"]["supersedes"][0]
    assert Event.objects.get(pk=results[3]["id"]).supersedes_id == results[1]["id"]
    assert set(Event.objects.values_list("client_id", flat=True)) == {
        "vote-0",
        "vote-1",
        "vote-1:a",
    }


def test_a_revision_whose_id_holds_pii_still_names_its_event(api: Api) -> None:
    # The redactor rewrites an id with an e-mail address in it; `supersedes` the same way.
    first = api.post(rating(id="vote-of-alice@example.com")).json()
    answer = api.post(rating(id="r2", rating=-1, supersedes="vote-of-alice@example.com"))
    assert answer.status_code == 201, answer.content
    assert Event.objects.get(pk=answer.json()["id"]).supersedes_id == first["id"]


def test_a_single_event_without_supersedes_costs_no_extra_query(api: Api) -> None:
    from django.test.utils import CaptureQueriesContext

    api.post(rating(id="warm-up"))
    with CaptureQueriesContext(connection) as plain:
        api.post(rating(id="plain"))
    with CaptureQueriesContext(connection) as revising:
        api.post(rating(id="plain:r2", rating=-1, supersedes="plain"))
    lookups = [q["sql"] for q in revising.captured_queries if q["sql"].startswith("SELECT")]
    assert any("superseded_by" in q or "supersedes_id" in q for q in lookups)  # it can tell
    assert not [
        q["sql"]
        for q in plain.captured_queries
        if q["sql"].startswith("SELECT") and "supersedes_id" in q["sql"]
    ]
    assert len(plain.captured_queries) < len(revising.captured_queries)


@pytest.mark.django_db(transaction=True)
def test_two_revisions_of_one_event_at_once_store_one_and_refuse_the_other(src: Any) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("two writers at once need PostgreSQL (SQLite serializes writers)")
    (first,) = feedback_ingest(source=src.source, items=[rating(id="vote-1")])
    barrier = threading.Barrier(2)
    answers: dict[str, Any] = {}

    def revise(name: str) -> None:
        try:
            barrier.wait()
            answers[name] = feedback_ingest(
                source=src.source, items=[rating(id=name, rating=-1, supersedes="vote-1")]
            )[0]
        finally:
            connections.close_all()

    threads = [threading.Thread(target=revise, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(a.status for a in answers.values())
    assert statuses == ["accepted", "error"]
    loser = next(a for a in answers.values() if a.status == "error")
    assert "already revised" in loser.errors["supersedes"][0]
    assert Event.objects.filter(supersedes_id=first.id).count() == 1


# --- what counts: only the latest revision ------------------------------------------------------


def _stored(source: Any, items: list[dict[str, Any]]) -> list[int]:
    """Ingest ITEMS, derive their rows and judge them as the workers do; their ids."""
    from apps.feedback.services.normalize import feedback_events_normalize
    from apps.quality.services import quality_events_judge

    results = feedback_ingest(source=source, items=items)
    ids = [r.id for r in results]
    assert None not in ids, [r.as_dict() for r in results]
    feedback_events_normalize(event_ids=ids)
    quality_events_judge(event_ids=ids)
    return ids


def _battle(client_id: str, choice: Any, **extra: Any) -> dict[str, Any]:
    return preference(
        id=client_id,
        rater="ann",
        messages=[{"role": "user", "content": f"Which is better, {client_id}?"}],
        responses=[{"model": "alpha", "content": "One."}, {"model": "beta", "content": "Two."}],
        choice=choice,
        **extra,
    )


def test_a_dataset_build_uses_only_the_latest_revision(src: Any, tmp_path: Any, settings: Any):
    from apps.datasets.selectors import manifest_rows, version_rows
    from apps.datasets.services import dataset_version_build, dataset_version_create, recipe_create

    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    [a, b, c, other] = _stored(
        src.source,
        [
            rating(id="v", rating=1, response="Canberra, I think."),
            rating(id="v:r2", rating=-1, supersedes="v", response="Canberra, I think."),
            rating(id="v:r3", rating=1, supersedes="v:r2", response="Canberra, I think."),
            rating(id="w", rating=-1, messages=[{"role": "user", "content": "2+2?"}], response="5"),
        ],
    )
    recipe = recipe_create(name="kto", kind="kto", test_fraction=0)
    version = dataset_version_build(version_id=dataset_version_create(recipe=recipe).pk)
    assert version.status == "succeeded", version.error
    used = {tuple(line["event_ids"]) for line in manifest_rows(version)}
    assert used == {(c,), (other,)}  # A <- B <- C: only C
    labels = {
        row["completion"][0]["content"]: row["label"] for row in version_rows(version, "train")
    }
    assert labels == {"Canberra, I think.": True, "5": False}


def test_the_leaderboard_counts_a_changed_vote_once_as_it_is_now(src: Any) -> None:
    from apps.evaluation.leaderboard import LeaderboardSettings, leaderboard_compute
    from apps.evaluation.selectors import BattleFilter, battle_counts
    from tests.evaluation.conftest import accept_all

    _stored(
        src.source,
        [
            _battle("b1", 0),
            _battle("b1:r2", 1, supersedes="b1"),
            _battle("b2", 0),
            _battle("b3", 1),
            _battle("b3:r2", "tie", supersedes="b3"),
        ],
    )
    accept_all()
    counted = {(a, b, o): n for a, b, o, n in battle_counts(BattleFilter())}
    assert counted == {
        ("alpha", "beta", "b"): 1,
        ("alpha", "beta", "a"): 1,
        ("alpha", "beta", "tie"): 1,
    }
    board = leaderboard_compute(LeaderboardSettings(filter=BattleFilter(), min_battles=1))
    assert board["battles"] == 3
    assert board["left_out"] == {"revised": 2}


def test_the_inbox_lists_latest_revisions_and_the_event_page_links_them(
    src: Any, client: Any
) -> None:
    from apps.curation.selectors import inbox_count, inbox_page
    from tests.curation.conftest import PASSWORD, user_in

    [old, new, other] = _stored(
        src.source,
        [rating(id="v"), rating(id="v:r2", rating=-1, supersedes="v"), preference(id="p")],
    )
    assert {e.id for e in inbox_page(filters={}).rows} == {other, new}
    assert inbox_count(filters={})["count"] == 2
    assert inbox_count(filters={"type": "rating"})["count"] == 1

    user = user_in("curator", "cora")
    assert client.login(username=user.username, password=PASSWORD)
    old_page = client.get(f"/events/{old}/").content.decode()
    assert f'Revised by <a href="/events/{new}/">event {new}</a>' in old_page
    new_page = client.get(f"/events/{new}/").content.decode()
    assert f'Revises <a href="/events/{old}/">event {old}</a>' in new_page
    assert "Revised by" not in new_page


def test_the_openapi_schema_documents_supersedes_on_the_way_in_and_out(client: Any) -> None:
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)
    components = schema["components"]["schemas"]
    assert "supersedes" in components["RatingEvent"]["properties"]
    assert {"supersedes", "superseded_by"} <= set(components["EventOutput"]["properties"])


def test_judge_audits_read_a_changed_vote_once_as_it_is_now(src: Any) -> None:
    from apps.judges.pairs import event_pairs

    question = [{"role": "user", "content": "Which reply is right?"}]
    replies = [{"model": "a", "content": "Canberra."}, {"model": "b", "content": "Sydney."}]
    feedback_ingest(
        source=src.source,
        items=[
            preference(id="v1", rater="ann", messages=question, responses=replies, choice=1),
            preference(
                id="v1:r2",
                rater="ann",
                messages=question,
                responses=replies,
                choice=0,
                supersedes="v1",
            ),
            preference(id="v2", rater="bob", messages=question, responses=replies, choice=0),
        ],
    )
    (pair,) = event_pairs()
    assert pair.votes == ["a", "a"]  # ann's first vote (Sydney) no longer counts
