"""Battles from the database: which feedback counts, slices, the DB path against the in-memory
path, thumbs rates, the API and the command."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.curation.models import EventTag
from apps.evaluation import ratings as R
from apps.evaluation.leaderboard import (
    LeaderboardSettings,
    leaderboard_compute,
    leaderboard_from_counts,
)
from apps.evaluation.selectors import BattleFilter, battle_counts
from apps.feedback.models import Event, RaterTombstone
from apps.feedback.services.importing import feedback_import
from apps.feedback.services.normalize import feedback_pending_normalize
from apps.quality.services import quality_events_judge, verdict_override
from tests.conftest import SHARED_DATA
from tests.evaluation.conftest import accept_all, pref


def _viewer():
    """A logged-in user in the viewer role (a user without a role sees no page and no data)."""
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user("viewer", password="pw")
    user.groups.add(Group.objects.get(name="viewer"))
    return user


pytestmark = pytest.mark.django_db

PRD = SHARED_DATA / "battles" / "prd_vicuna80_human_battles.jsonl"


def counts(**filters) -> dict[tuple[str, str, str], int]:
    return {(a, b, o): n for a, b, o, n in battle_counts(BattleFilter(**filters))}


def test_preferences_and_rankings_become_battles(send) -> None:
    send(
        [
            pref(1, "x", "y", 0),
            pref(2, "x", "y", "tie"),
            pref(3, "y", "x", "both_bad"),
            {
                "type": "ranking",
                "id": "r-1",
                "rater": "u",
                "messages": [{"role": "user", "content": "rank these"}],
                "responses": [
                    {"model": "x", "content": "1"},
                    {"model": "y", "content": "2"},
                    {"model": "z", "content": "3"},
                ],
                "ranking": [2, 0, 1],
            },
        ]
    )
    assert counts() == {
        ("x", "y", "a"): 2,
        ("x", "y", "tie"): 1,
        ("y", "x", "both_bad"): 1,
        ("x", "z", "b"): 1,
        ("y", "z", "b"): 1,
    }


def test_an_arena_thumbs_beats_each_sibling(send) -> None:
    arena = {"sibling_model_ids": ["y", "z"]}
    send(
        [
            {
                "type": "rating",
                "id": "t-1",
                "rater": "u",
                "model": "x",
                "messages": [{"role": "user", "content": "q"}],
                "response": "r",
                "rating": 1,
                "metadata": arena,
            },
            {
                "type": "rating",
                "id": "t-2",
                "rater": "u",
                "model": "x",
                "messages": [{"role": "user", "content": "q2"}],
                "response": "r",
                "rating": -1,
                "metadata": {"siblings": ["y"]},
            },
            {
                "type": "rating",
                "id": "t-3",
                "rater": "u",
                "model": "x",
                "messages": [{"role": "user", "content": "q3"}],
                "response": "r",
                "rating": 1,
            },
        ]
    )
    assert counts() == {("x", "y", "a"): 1, ("x", "z", "a"): 1, ("x", "y", "b"): 1}


def test_only_usable_events_of_raters_not_forgotten_count(send) -> None:
    ids = send([pref(i, "x", "y", 0, rater=f"r{i}") for i in range(4)])
    send([pref(9, "x", "y", 1)], accept=False)  # not judged yet: not usable
    verdict_override(event_id=ids[0], status="rejected", note="spam")
    verdict_override(event_id=ids[1], status="quarantined")
    RaterTombstone.objects.create(rater_hash=Event.objects.get(pk=ids[2]).rater_hash)
    assert counts() == {("x", "y", "a"): 1}


def test_the_real_quality_pipeline_decides_what_counts(send) -> None:
    ids = send([pref(i, "x", "y", i % 2, rater=f"r{i}") for i in range(6)], accept=False)
    assert counts() == {}
    quality_events_judge(event_ids=ids)
    assert sum(counts().values()) == 6


def test_slices_by_source_tag_date_and_trust(send, make_source) -> None:
    other = make_source("other-app").source
    send([pref(1, "x", "y", 0, tags=["code"], timestamp="2024-03-01T10:00:00Z")])
    send([pref(2, "x", "y", 1, timestamp="2024-04-01T10:00:00Z")], source=other)
    send([pref(3, "x", "y", "tie")])
    EventTag.objects.create(event=Event.objects.get(client_id="p-3"), name="math")
    assert counts(source="other-app") == {("x", "y", "b"): 1}
    assert counts(source=str(other.pk)) == {("x", "y", "b"): 1}
    assert counts(tag="code") == {("x", "y", "a"): 1}
    assert counts(tag="math") == {("x", "y", "tie"): 1}
    march = datetime(2024, 3, 1, tzinfo=UTC)
    assert counts(since=march, until=datetime(2024, 3, 2, tzinfo=UTC)) == {("x", "y", "a"): 1}
    from apps.quality.models import Verdict

    Verdict.objects.filter(event__client_id="p-3").update(trust_weight=0.2)
    assert ("x", "y", "tie") not in counts(min_trust=0.5)


def test_imported_fastchat_battles_rate_the_same_from_the_database(src) -> None:
    if not PRD.exists():
        pytest.skip("../shared/data/battles is absent")
    summary = feedback_import(source=src.source, format="fastchat", path=PRD)
    assert summary.imported == 7040
    feedback_pending_normalize()
    accept_all()
    settings = LeaderboardSettings(bootstrap=200, online_elo_k=4.0)
    from_db = leaderboard_compute(settings)
    rows = [json.loads(line) for line in PRD.open()]
    in_memory = leaderboard_from_counts(
        R.counts_from_battles(
            [r["model_a"] for r in rows], [r["model_b"] for r in rows], [r["winner"] for r in rows]
        ),
        settings,
        sequence=[(r["model_a"], r["model_b"], r["winner"]) for r in rows],
    )
    assert from_db["models"] == in_memory["models"]
    assert from_db["battles"] == 7040 and len(from_db["groups"]) == 1 and not from_db["warnings"]


# --- thumbs -----------------------------------------------------------------------------


def test_thumbs_rates_per_model_checkpoint_and_day(send) -> None:
    def thumb(i: int, value: int, day: int, checkpoint: str = "ck-1") -> dict:
        return {
            "type": "rating",
            "id": f"t-{i}",
            "rater": f"u{i}",
            "model": "m",
            "checkpoint": checkpoint,
            "messages": [{"role": "user", "content": f"q{i}"}],
            "response": "r",
            "rating": value,
            "timestamp": f"2024-05-0{day}T12:00:00Z",
        }

    send([thumb(1, 1, 1), thumb(2, 1, 1), thumb(3, -1, 1), thumb(4, 1, 2), thumb(5, -1, 2, "ck-2")])
    from apps.evaluation.thumbs import thumbs_rates

    result = thumbs_rates(BattleFilter(), model="m")
    series = {s["checkpoint"]: s for s in result["series"]}
    one = series["ck-1"]
    assert [p["period"] for p in one["points"]] == ["2024-05-01", "2024-05-02"]
    assert one["points"][0]["up"] == 2 and one["points"][0]["n"] == 3
    assert (
        one["total"]["rate"] == 0.75
        and 0 < one["total"]["lower"] < 0.75 < one["total"]["upper"] < 1
    )
    assert series["ck-2"]["total"] == {
        "up": 0,
        "down": 1,
        "n": 1,
        "rate": 0.0,
        "lower": 0.0,
        "upper": pytest.approx(0.7935, abs=1e-4),
    }
    week = thumbs_rates(BattleFilter(), model="m", checkpoint="ck-1", bucket="week")
    assert len(week["series"]) == 1 and sum(p["n"] for p in week["series"][0]["points"]) == 4


# --- API and command ----------------------------------------------------------------------


@pytest.fixture
def battles(send) -> None:
    send(
        [pref(i, "x", "y", 0 if i % 3 else 1) for i in range(30)]
        + [pref(100 + i, "y", "z", i % 2) for i in range(25)]
    )


def test_the_api_answers_the_leaderboard_to_a_login(battles, client) -> None:
    assert client.get("/api/v1/leaderboard").status_code in (401, 403)
    user = _viewer()
    client.force_login(user)
    body = client.get("/api/v1/leaderboard", {"bootstrap": 50}).json()
    assert set(body) >= {"models", "groups", "warnings", "method", "settings"}
    first = body["models"][0]
    assert set(first) >= {"model", "rating", "lower", "upper", "rank", "battles", "group", "flags"}
    assert body["settings"]["bootstrap"] == 50


def test_a_secret_key_sees_only_its_own_source(battles, client, src, make_source) -> None:
    other = make_source("other-app")
    mine = client.get(
        "/api/v1/leaderboard", {"bootstrap": 0}, HTTP_AUTHORIZATION=f"Bearer {src.secret}"
    ).json()
    assert mine["battles"] == 55
    theirs = client.get(
        "/api/v1/leaderboard",
        {"bootstrap": 0, "source": "test-app"},
        HTTP_AUTHORIZATION=f"Bearer {other.secret}",
    ).json()
    assert theirs["battles"] == 0
    assert (
        client.get(
            "/api/v1/leaderboard", HTTP_AUTHORIZATION=f"Bearer {src.publishable}"
        ).status_code
        == 403
    )


def test_bad_parameters_get_a_field_message(battles, client) -> None:
    client.force_login(_viewer())
    for params, field in [
        ({"bootstrap": -1}, "bootstrap"),
        ({"since": "yesterday"}, "since"),
        ({"anchor": "gpt4"}, "anchor"),
        ({"min_trust": 2}, "min_trust"),
        ({"since": "2024-05-02", "until": "2024-05-01"}, "until"),
        ({"meta": "no pair"}, "meta"),
        ({"meta": "anony=true,bad key=1"}, "meta"),
    ]:
        response = client.get("/api/v1/leaderboard", params)
        assert response.status_code == 400, params
        assert field in response.json()["error"]["fields"], response.json()
    assert client.get("/api/v1/thumbs", {"bucket": "year"}).status_code == 400


def test_the_thumbs_api(send, client) -> None:
    send(
        [
            {
                "type": "rating",
                "id": "t-1",
                "rater": "u",
                "model": "m",
                "messages": [{"role": "user", "content": "q"}],
                "response": "r",
                "rating": 1,
            }
        ]
    )
    client.force_login(_viewer())
    body = client.get("/api/v1/thumbs", {"model": "m", "bucket": "day"}).json()
    assert body["series"][0]["total"]["up"] == 1


def test_the_command_prints_a_table_and_json(battles) -> None:
    out = io.StringIO()
    call_command("leaderboard", "--bootstrap", "50", stdout=out)
    table = out.getvalue()
    assert "rank" in table and "x" in table and "55 battles" in table
    out = io.StringIO()
    call_command(
        "leaderboard",
        "--bootstrap",
        "0",
        "--format",
        "json",
        "--anchor",
        "y=1200",
        "--elo-k",
        "16",
        stdout=out,
    )
    board = json.loads(out.getvalue())
    assert {m["model"]: m["rating"] for m in board["models"]}["y"] == 1200.0
    assert "online_elo" in board["models"][0]
    with pytest.raises(CommandError, match="--since"):
        call_command("leaderboard", "--since", "soon", stdout=io.StringIO())
