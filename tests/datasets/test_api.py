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
