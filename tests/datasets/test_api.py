"""The datasets API: recipes CRUD, build (202), versions, downloads, compare, eval sets, who may."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest
from django.test import Client

from tests.datasets.conftest import pref, thumbs

pytestmark = pytest.mark.django_db


@pytest.fixture
def cura(client: Client, curator) -> Client:
    client.force_login(curator)
    return client


@pytest.fixture
def events(feed) -> list[int]:
    return feed(
        [pref(f"Question {i}?", f"Good {i}.", f"Bad {i}.", 0, rater=f"r{i}") for i in range(6)]
        + [thumbs("Hi?", "Hello!", 1, rater="t")]
    )


def test_a_curator_creates_a_recipe_builds_it_and_downloads_the_files(
    cura, events, django_capture_on_commit_callbacks
) -> None:
    made = cura.post(
        "/api/v1/recipes",
        {
            "name": "prefs",
            "kind": "dpo",
            "filters": {"type": "preference"},
            "test_fraction": 0.3,
            "pair_rules": {"thumbs": False},
        },
        content_type="application/json",
    )
    assert made.status_code == 201, made.json()
    recipe = made.json()
    assert recipe["filters"] == {"type": "preference"} and recipe["pair_rules"] == {"thumbs": False}
    with django_capture_on_commit_callbacks(execute=True):
        queued = cura.post(f"/api/v1/recipes/{recipe['id']}/build")
    assert (
        queued.status_code == 202
        and queued["Location"] == f"/api/v1/dataset-versions/{queued.json()['id']}"
    )
    detail = cura.get(queued["Location"]).json()
    assert (
        detail["status"] == "succeeded"
        and detail["progress"] == 1.0
        and sum(detail["rows"].values()) == 6
    )
    assert (
        detail["recipe_snapshot"]["filters"] == {"type": "preference"} and len(detail["hash"]) == 64
    )
    assert detail["stats"]["train"]["quadrant"] == {"preference": detail["rows"]["train"]}
    jsonl = cura.get(detail["files"]["train.jsonl"])
    assert jsonl.status_code == 200 and jsonl["Content-Type"] == "application/jsonl"
    assert (
        "attachment" in jsonl["Content-Disposition"] and "prefs-v" in jsonl["Content-Disposition"]
    )
    assert len(b"".join(jsonl.streaming_content).splitlines()) == detail["rows"]["train"]
    parquet = cura.get(detail["files"]["test.parquet"])
    assert (
        pq.read_table(io.BytesIO(b"".join(parquet.streaming_content))).num_rows
        == detail["rows"]["test"]
    )
    listed = cura.get(f"/api/v1/dataset-versions?recipe={recipe['id']}").json()
    assert [v["id"] for v in listed["results"]] == [detail["id"]]
    assert cura.get(f"/api/v1/dataset-versions/{detail['id']}/files/secrets.txt").status_code == 404


def test_compare_names_rows_added_and_removed(
    cura, events, feed, django_capture_on_commit_callbacks
) -> None:
    rid = cura.post(
        "/api/v1/recipes", {"name": "s", "kind": "sft"}, content_type="application/json"
    ).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        first = cura.post(f"/api/v1/recipes/{rid}/build").json()["id"]
    feed([thumbs("New?", "Yes.", 1, rater="n")])
    with django_capture_on_commit_callbacks(execute=True):
        second = cura.post(f"/api/v1/recipes/{rid}/build").json()["id"]
    diff = cura.get(f"/api/v1/dataset-versions/{first}/compare?with={second}").json()
    assert (diff["added"], diff["removed"], diff["kept"]) == (1, 0, 7)
    back = cura.get(f"/api/v1/dataset-versions/{second}/compare", {"with": first}).json()
    assert (back["added"], back["removed"]) == (0, 1)
    bad = cura.get(f"/api/v1/dataset-versions/{first}/compare?with=x")
    assert bad.status_code == 400 and "with" in bad.json()["error"]["fields"]


def test_bad_recipes_get_field_errors_and_change_nothing(cura) -> None:
    bad = cura.post(
        "/api/v1/recipes",
        {"name": "x y", "kind": "ppo", "test_fraction": 2, "filters": {"since": "yesterday"}},
        content_type="application/json",
    )
    assert bad.status_code == 400
    assert {"name", "kind", "test_fraction"} <= set(bad.json()["error"]["fields"])
    bad_filter = cura.post(
        "/api/v1/recipes",
        {"name": "ok", "kind": "sft", "filters": {"since": "yesterday"}},
        content_type="application/json",
    )
    assert bad_filter.status_code == 400 and "filters.since" in bad_filter.json()["error"]["fields"]
    assert cura.get("/api/v1/recipes").json()["results"] == []
    made = cura.post(
        "/api/v1/recipes", {"name": "ok", "kind": "sft"}, content_type="application/json"
    ).json()
    patched = cura.patch(
        f"/api/v1/recipes/{made['id']}", {"min_trust": 0.5}, content_type="application/json"
    )
    assert patched.status_code == 200 and patched.json()["min_trust"] == 0.5
    assert cura.delete(f"/api/v1/recipes/{made['id']}").status_code == 403, "deleting is an admin's"


def test_eval_sets_upload_as_multipart(cura) -> None:
    upload = io.BytesIO(
        b'{"prompt": "What is 2+2?"}\n{"messages": [{"role": "user", "content": "Hi"}]}\n'
    )
    upload.name = "evals.jsonl"
    made = cura.post("/api/v1/eval-sets", {"name": "mini", "file": upload})
    assert made.status_code == 201 and made.json()["prompts"] == 2
    used = cura.post(
        "/api/v1/recipes",
        {"name": "clean", "kind": "sft", "decontaminate": "mini"},
        content_type="application/json",
    )
    assert used.status_code == 201 and used.json()["decontaminate"] == "mini"
    junk = io.BytesIO(b"not json")
    junk.name = "x.jsonl"
    bad = cura.post("/api/v1/eval-sets", {"name": "junk", "file": junk})
    assert bad.status_code == 400 and "file" in bad.json()["error"]["fields"]


def test_who_may_read_and_write(client: Client, viewer, src, events) -> None:
    assert client.get("/api/v1/dataset-versions").status_code in (401, 403)
    keyed = client.get("/api/v1/dataset-versions", HTTP_AUTHORIZATION=f"Bearer {src.secret}")
    assert keyed.status_code == 200
    assert (
        client.post(
            "/api/v1/recipes",
            {"name": "k", "kind": "sft"},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {src.secret}",
        ).status_code
        == 403
    )
    client.force_login(viewer)
    assert client.get("/api/v1/recipes").status_code == 200
    assert (
        client.post(
            "/api/v1/recipes", {"name": "v", "kind": "sft"}, content_type="application/json"
        ).status_code
        == 403
    )


# --- isolation: a key reads only what came from its own source ----------------------------------


def _build(cura: Client, capture, name: str, filters: dict | None = None) -> int:
    made = cura.post(
        "/api/v1/recipes",
        {"name": name, "kind": "sft", "filters": filters or {}, "test_fraction": 0},
        content_type="application/json",
    )
    assert made.status_code == 201, made.json()
    with capture(execute=True):
        version = cura.post(f"/api/v1/recipes/{made.json()['id']}/build").json()["id"]
    assert cura.get(f"/api/v1/dataset-versions/{version}").json()["status"] == "succeeded"
    return version


def _as_key(client: Client, key: str, path: str, **params):
    return client.get(path, params, HTTP_AUTHORIZATION=f"Bearer {key}")


def test_a_key_reads_no_part_of_a_version_built_from_another_sources_events(
    client: Client, cura, src, make_source, feed, django_capture_on_commit_callbacks
) -> None:
    other = make_source("other-app")
    feed([thumbs("Theirs?", "Their answer.", 1, rater="o")], source=other.source)
    theirs = _build(cura, django_capture_on_commit_callbacks, "theirs", {"source": "other-app"})
    client.logout()
    base = f"/api/v1/dataset-versions/{theirs}"
    for path in (
        base,
        f"{base}/files/train.jsonl",
        f"{base}/files/train.parquet",
        f"{base}/files/stats.json",
        f"{base}/files/manifest.jsonl",
        f"{base}/compare?with={theirs}",
    ):
        answer = _as_key(client, src.secret, path)
        assert answer.status_code == 404, (path, answer.status_code)
        assert _as_key(client, other.secret, path).status_code == 200, path
    assert _as_key(client, src.secret, "/api/v1/dataset-versions").json()["results"] == []
    assert [
        v["id"] for v in _as_key(client, other.secret, "/api/v1/dataset-versions").json()["results"]
    ] == [theirs]
    train = b"".join(_as_key(client, other.secret, f"{base}/files/train.jsonl").streaming_content)
    assert b"Their answer." in train


def test_a_version_mixing_two_sources_is_read_by_neither_key_only_by_staff(
    client: Client, cura, src, make_source, feed, django_capture_on_commit_callbacks
) -> None:
    other = make_source("other-app")
    feed([thumbs("Mine?", "My answer.", 1, rater="m")])
    feed([thumbs("Theirs?", "Their answer.", 1, rater="o")], source=other.source)
    both = _build(cura, django_capture_on_commit_callbacks, "both")
    assert cura.get(f"/api/v1/dataset-versions/{both}/files/train.jsonl").status_code == 200
    client.logout()
    for key in (src.secret, other.secret):
        assert _as_key(client, key, f"/api/v1/dataset-versions/{both}").status_code == 404
        assert (
            _as_key(client, key, f"/api/v1/dataset-versions/{both}/files/train.jsonl").status_code
            == 404
        )
        assert _as_key(client, key, "/api/v1/dataset-versions").json()["results"] == []


def test_compare_by_key_needs_both_versions_to_be_the_keys_own(
    client: Client, cura, src, make_source, feed, django_capture_on_commit_callbacks
) -> None:
    other = make_source("other-app")
    feed([thumbs("Mine?", "My answer.", 1, rater="m")])
    feed([thumbs("Theirs?", "Their answer.", 1, rater="o")], source=other.source)
    mine = _build(cura, django_capture_on_commit_callbacks, "mine", {"source": "test-app"})
    theirs = _build(cura, django_capture_on_commit_callbacks, "theirs", {"source": "other-app"})
    client.logout()
    own = _as_key(client, src.secret, f"/api/v1/dataset-versions/{mine}/compare", **{"with": mine})
    assert own.status_code == 200 and own.json()["kept"] == 1
    assert (
        _as_key(
            client, src.secret, f"/api/v1/dataset-versions/{mine}/compare", **{"with": theirs}
        ).status_code
        == 404
    )


def test_a_key_sees_only_recipes_that_select_its_own_source_and_no_eval_sets(
    client: Client, cura, src, make_source
) -> None:
    make_source("other-app")
    for name, filters in (("mine", {"source": "test-app"}), ("theirs", {"source": "other-app"})):
        made = cura.post(
            "/api/v1/recipes",
            {"name": name, "kind": "sft", "filters": filters},
            content_type="application/json",
        )
        assert made.status_code == 201
    cura.post("/api/v1/recipes", {"name": "all", "kind": "sft"}, content_type="application/json")
    ids = {r["name"]: r["id"] for r in cura.get("/api/v1/recipes").json()["results"]}
    assert set(ids) == {"mine", "theirs", "all"}
    client.logout()
    listed = _as_key(client, src.secret, "/api/v1/recipes").json()["results"]
    assert [r["name"] for r in listed] == ["mine"]
    assert _as_key(client, src.secret, f"/api/v1/recipes/{ids['mine']}").status_code == 200
    for name in ("theirs", "all"):
        assert _as_key(client, src.secret, f"/api/v1/recipes/{ids[name]}").status_code == 404
    assert _as_key(client, src.secret, "/api/v1/eval-sets").status_code == 403


def test_the_migration_backfills_a_versions_sources_from_its_manifest(
    cura, src, make_source, feed, django_capture_on_commit_callbacks
) -> None:
    import importlib

    from django.apps import apps as global_apps

    from apps.datasets.models import DatasetVersion

    other = make_source("other-app")
    feed([thumbs("Mine?", "My answer.", 1, rater="m")])
    feed([thumbs("Theirs?", "Their answer.", 1, rater="o")], source=other.source)
    both = DatasetVersion.objects.get(pk=_build(cura, django_capture_on_commit_callbacks, "both"))
    both.sources.clear()
    migration = importlib.import_module("apps.datasets.migrations.0003_datasetversion_sources")
    migration.backfill_sources(global_apps, None)
    assert set(both.sources.values_list("name", flat=True)) == {"test-app", "other-app"}
