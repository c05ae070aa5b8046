"""Reproducing FastChat's own leaderboard from an imported arena log: the arena's standard is
anonymous battles only (`--meta anony=true`), and a research log's heavy voters, whom the live
daily vote cap holds for review, count with `--include-quarantined` or under the source's own
policy (`Source.daily_vote_cap = 0`). The leaderboard says how many battles it left out, and why.

The reference is computed here the way FastChat's `elo_analysis.compute_mle_elo` does it (since
2024-03): win counts pivoted per ordered pair (a win counts twice, a tie once each way), one
weighted logistic regression without intercept or penalty, scale 400, base 10, 1000 at the mean."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from apps.feedback.models import Event
from apps.feedback.services.normalize import feedback_pending_normalize
from apps.quality.services import quality_events_judge
from apps.sources.models import Source
from tests.conftest import SHARED_DATA

PRD = SHARED_DATA / "battles" / "prd_vicuna80_human_battles.jsonl"
ROWS = 1500


def arena_log(path: Path) -> list[dict]:
    """A FastChat arena log: the first ROWS real battles, a quarter of them named (not anonymous),
    all cast within 20 hours, so that the busiest annotators pass the 300-a-day cap (at a pace
    under the hourly burst limit)."""
    if not PRD.exists():
        pytest.skip("../shared/data/battles is absent (see its README)")
    rows = [json.loads(line) for line in PRD.open()][:ROWS]
    for index, row in enumerate(rows):
        row["anony"] = index % 4 != 0
        row["tstamp"] = 1_700_000_000 + index * 48
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return rows


def fastchat_mle_elo(rows: list[dict]) -> dict[str, float]:
    """FastChat's compute_mle_elo (pivot-aggregated, penalty None), on ROWS."""
    from sklearn.linear_model import LogisticRegression

    wins: dict[tuple[str, str], float] = {}
    for row in rows:
        a, b, winner = row["model_a"], row["model_b"], row["winner"]
        if winner == "model_a":
            wins[(a, b)] = wins.get((a, b), 0) + 2
        elif winner == "model_b":
            wins[(b, a)] = wins.get((b, a), 0) + 2
        else:
            wins[(a, b)] = wins.get((a, b), 0) + 1
            wins[(b, a)] = wins.get((b, a), 0) + 1
    models = sorted({m for pair in wins for m in pair})
    index = {m: i for i, m in enumerate(models)}
    features, labels, weights = [], [], []
    for a in models:
        for b in models:
            if a == b or ((a, b) not in wins and (b, a) not in wins):
                continue
            row = np.zeros(len(models))
            row[index[a]], row[index[b]] = math.log(10), -math.log(10)
            features += [row, row]
            labels += [1.0, 0.0]
            weights += [wins.get((a, b), 0), wins.get((b, a), 0)]
    fit = LogisticRegression(fit_intercept=False, penalty=None, tol=1e-6)
    fit.fit(np.array(features), np.array(labels), sample_weight=np.array(weights))
    return {m: 400 * fit.coef_[0][index[m]] + 1000 for m in models}


def board(*options: str) -> dict:
    out = io.StringIO()
    call_command(
        "leaderboard", "--format", "json", "--bootstrap", "0", "--exact", *options, stdout=out
    )
    return json.loads(out.getvalue())


def imported(path: Path, source: str) -> None:
    call_command(
        "import_feedback",
        "--format",
        "fastchat",
        "--source",
        source,
        str(path),
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    feedback_pending_normalize()
    quality_events_judge(event_ids=list(Event.objects.values_list("pk", flat=True)))


@pytest.mark.slow
@pytest.mark.django_db
def test_an_arena_log_filtered_to_anonymous_battles_with_held_ones_gives_fastchats_ratings(
    tmp_path,
) -> None:
    rows = arena_log(tmp_path / "arena.jsonl")
    imported(tmp_path / "arena.jsonl", "arena-log")

    default = board("--source", "arena-log")
    assert default["left_out"].get("quarantined", 0) > 0  # the cap held the busiest annotators
    assert default["battles"] + sum(default["left_out"].values()) == ROWS

    anonymous = board("--source", "arena-log", "--meta", "anony=true", "--include-quarantined")
    expected = fastchat_mle_elo([row for row in rows if row["anony"]])
    assert anonymous["battles"] == sum(row["anony"] for row in rows)
    assert anonymous["left_out"] == {"meta": ROWS - anonymous["battles"]}
    got = {m["model"]: m["rating"] for m in anonymous["models"]}
    assert got.keys() == expected.keys()
    for model, rating in expected.items():
        assert got[model] == pytest.approx(rating, abs=0.5), model


@pytest.mark.slow
@pytest.mark.django_db
def test_a_research_log_judged_under_its_own_policy_has_no_daily_cap(tmp_path) -> None:
    arena_log(tmp_path / "arena.jsonl")
    source = Source.objects.create(name="research-log", daily_vote_cap=0)
    assert source.daily_vote_cap == 0
    imported(tmp_path / "arena.jsonl", "research-log")

    result = board("--source", "research-log")

    assert "quarantined" not in result["left_out"]
    assert result["battles"] == ROWS


@pytest.mark.django_db
def test_the_leaderboard_counts_battles_waiting_for_a_verdict_as_left_out(tmp_path) -> None:
    arena_log(tmp_path / "arena.jsonl")
    call_command(
        "import_feedback",
        "--format",
        "fastchat",
        "--source",
        "unjudged",
        "--no-process",
        str(tmp_path / "arena.jsonl"),
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    feedback_pending_normalize()
    out = io.StringIO()
    call_command("leaderboard", "--bootstrap", "0", "--source", "unjudged", stdout=out)
    assert f"left out: {ROWS} battles ({ROWS} waiting for a verdict" in out.getvalue()
