"""The rating maths on hand-made battles (always) and on the PRD vicuna80 battles against
FastChat's own numbers (when ../shared is present)."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest

from apps.evaluation import ratings as R
from apps.evaluation.leaderboard import LeaderboardSettings, format_table, leaderboard_from_counts
from tests.conftest import SHARED_DATA

BATTLES = SHARED_DATA / "battles" / "prd_vicuna80_human_battles.jsonl"
REFERENCE = SHARED_DATA / "battles" / "prd_vicuna80_fastchat_reference.json"


def board(rows, **settings):
    return leaderboard_from_counts(R.counts_from_rows(rows), LeaderboardSettings(**settings))


def by_model(result):
    return {m["model"]: m for m in result["models"]}


# --- hand-made ----------------------------------------------------------------------------


def test_two_models_get_the_closed_form_rating() -> None:
    # 3 wins in 4: P = 3/4, so the gap is 400 * log10(3), split around 1000.
    fit = R.fit_bt(R.counts_from_rows([("a", "b", "a", 3), ("a", "b", "b", 1)]), exact=True)
    gap = 400 * math.log10(3)
    assert fit.ratings == pytest.approx([1000 + gap / 2, 1000 - gap / 2], abs=1e-3)


def test_a_tie_is_half_a_win_and_both_bad_is_a_tie() -> None:
    tied = R.fit_bt(R.counts_from_rows([("a", "b", "tie", 2), ("a", "b", "a", 1)]), exact=True)
    halves = R.fit_bt(R.counts_from_rows([("a", "b", "a", 2), ("a", "b", "b", 1)]), exact=True)
    bad = R.fit_bt(R.counts_from_rows([("a", "b", "both_bad", 2), ("a", "b", "a", 1)]), exact=True)
    # 2 ties + 1 win = 2 points of 3, the same odds as 2 wins and a loss
    assert tied.ratings == pytest.approx(halves.ratings, abs=1e-6)
    assert bad.ratings == pytest.approx(tied.ratings, abs=1e-9)


def test_the_side_a_model_is_on_does_not_matter() -> None:
    one = R.fit_bt(
        R.counts_from_rows(
            [("a", "b", "a", 5), ("b", "c", "b", 2), ("c", "a", "a", 1), ("a", "c", "b", 4)]
        )
    )
    other = R.fit_bt(
        R.counts_from_rows(
            [("b", "a", "b", 5), ("c", "b", "a", 2), ("a", "c", "b", 1), ("c", "a", "a", 4)]
        )
    )
    assert one.ratings == pytest.approx(other.ratings, abs=1e-3)


def test_online_elo_follows_the_update_rule_in_order() -> None:
    elo = R.online_elo([("a", "b", "a"), ("a", "b", "tie")], k=32)
    first = 32 * (1 - 0.5)
    expected = 1 / (1 + 10 ** (-(2 * first) / 400))
    second = 32 * (0.5 - expected)
    assert elo["a"] == pytest.approx(1000 + first + second)
    assert elo["b"] == pytest.approx(1000 - first - second)


def test_ranks_count_the_models_clearly_above() -> None:
    lower = np.array([1100.0, 1050.0, 900.0])
    upper = np.array([1200.0, 1150.0, 1000.0])
    assert R.ranks_by_interval(lower, upper).tolist() == [1, 1, 3]


def test_disconnected_battles_are_separate_groups_with_a_warning() -> None:
    result = board(
        [("a", "b", "a", 30), ("a", "b", "b", 20), ("c", "d", "a", 25), ("c", "d", "b", 25)],
        bootstrap=50,
    )
    models = by_model(result)
    assert {models["a"]["group"], models["b"]["group"]} != {models["c"]["group"]}
    assert models["a"]["group"] == models["b"]["group"]
    assert len(result["groups"]) == 2
    assert any("2 groups" in w for w in result["warnings"])
    # each group is centred on its own, and ranks count only within the group
    assert (models["c"]["rating"] + models["d"]["rating"]) / 2 == pytest.approx(1000, abs=0.01)
    assert models["c"]["rank"] == models["d"]["rank"] == 1


def test_a_model_that_only_wins_is_flagged_not_rated() -> None:
    rows = [("a", "b", "a", 30), ("a", "b", "b", 25), ("c", "a", "a", 12), ("c", "b", "a", 10)]
    result = board(rows, bootstrap=100, min_battles=5)
    models = by_model(result)
    assert models["c"]["flags"] == ["one_sided"] and models["c"]["reliable"] is False
    assert models["a"]["reliable"] and models["b"]["reliable"]
    # the bounded models stay centred; the runaway one does not drag them
    assert (models["a"]["rating"] + models["b"]["rating"]) / 2 == pytest.approx(1000, abs=0.5)
    assert any("unbounded" in w for w in result["warnings"])
    assert "?" in format_table(result).splitlines()[1]


def test_a_single_battle_is_flagged_as_too_few() -> None:
    result = board([("a", "b", "tie", 1)], bootstrap=20)
    for model in result["models"]:
        assert "few_battles" in model["flags"] and not model["reliable"]
        assert model["rating"] == pytest.approx(1000)


def test_no_battles_says_so() -> None:
    result = board([])
    assert result["models"] == [] and "No usable battles" in result["warnings"][0]


def test_self_battles_and_unnamed_models_are_left_out_with_a_count() -> None:
    result = board(
        [("a", "a", "a", 3), ("", "b", "a", 2), ("a", "b", "a", 25), ("a", "b", "b", 25)]
    )
    assert result["battles"] == 50
    assert any("3 battle(s) left out: model against itself" in w for w in result["warnings"])


def test_an_anchor_pins_its_model_and_keeps_the_gaps() -> None:
    rows = [("a", "b", "a", 30), ("a", "b", "b", 20), ("b", "c", "a", 30), ("b", "c", "b", 22)]
    free = by_model(board(rows, bootstrap=0))
    pinned = by_model(board(rows, bootstrap=50, anchor=("b", 1200.0)))
    assert (
        pinned["b"]["rating"] == 1200.0 and pinned["b"]["lower"] == pinned["b"]["upper"] == 1200.0
    )
    gap = free["a"]["rating"] - free["c"]["rating"]
    assert pinned["a"]["rating"] - pinned["c"]["rating"] == pytest.approx(gap, abs=0.02)


def _simulate(truth: np.ndarray, n: int, rng: np.random.Generator) -> R.Counts:
    m = len(truth)
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    p = 1 / (1 + 10 ** ((truth[b] - truth[a]) / 400))
    u = rng.random(n)
    outcome = np.where(u < p * 0.9, "a", np.where(u < 0.9, "b", "tie"))
    names = [f"m{i:02d}" for i in range(m)]
    return R.counts_from_battles([names[i] for i in a], [names[i] for i in b], outcome.tolist())


def test_bootstrap_intervals_cover_the_true_ratings() -> None:
    rng = np.random.default_rng(7)
    truth = np.array([1100.0, 1050.0, 1000.0, 960.0, 890.0])
    covered = total = 0
    for trial in range(12):
        counts = _simulate(truth, 600, rng)
        fit = R.fit_bt(counts, bootstrap=200, seed=trial)
        centred = truth - truth.mean() + 1000
        covered += int(((fit.lower <= centred) & (centred <= fit.upper)).sum())
        total += len(truth)
    assert covered / total >= 0.85  # nominal 0.95; a bootstrap percentile is a little narrow


def test_batched_newton_agrees_with_a_fit_per_round() -> None:
    counts = _simulate(np.array([1080.0, 1000.0, 940.0, 1010.0]), 400, np.random.default_rng(1))
    draws = np.random.default_rng(3).multinomial(
        counts.total, counts.count / counts.count.sum(), size=5
    )
    design = R._design(counts)
    together, _ = R._solve_batch(design, draws[:, design.order].astype(float), alpha=math.log(10))
    for r in range(5):
        one = R.Counts(counts.models, counts.a, counts.b, counts.score, draws[r].astype(float))
        single = (R.fit_bt(one, exact=True).ratings - 1000) / 400
        assert together[r] == pytest.approx(single, abs=1e-6)


def test_bootstrap_rounds_agree_with_a_fit_per_round() -> None:
    counts = _simulate(
        np.array([1080.0, 1000.0, 940.0, 1010.0, 900.0]), 300, np.random.default_rng(2)
    )
    draws = np.random.default_rng(4).multinomial(counts.total, counts.count / counts.total, size=6)
    design = R._design(counts)
    weights = draws[:, design.order].astype(float)
    n_pair = np.add.reduceat(weights, design.starts, axis=1)
    s_pair = np.add.reduceat(weights * design.score_lo, design.starts, axis=1)
    start = (R.fit_bt(counts, exact=True).ratings - 1000) / 400
    together = R._newton_rounds(design, n_pair, s_pair, alpha=math.log(10), start=start)
    for r in range(6):
        one = R.Counts(counts.models, counts.a, counts.b, counts.score, draws[r].astype(float))
        single = (R.fit_bt(one, exact=True).ratings - 1000) / 400
        assert together[r] == pytest.approx(single, abs=1e-6)


@pytest.mark.parametrize("n", [1, 3, 40, 5000])
def test_the_fast_multinomial_draws_the_multinomial(n: int) -> None:
    p = np.array([0.5, 0.3, 0.15, 0.05, 0.0])
    rounds = 200_000
    fast = R.multinomial_rounds(np.random.default_rng(n), n, p, rounds)
    assert fast.shape == (rounds, 5) and (fast >= 0).all() and (fast.sum(axis=1) == n).all()
    assert (fast[:, 4] == 0).all()
    # Mean n p and covariance n (diag(p) - p p^T), to within a few standard errors.
    assert fast.mean(axis=0) == pytest.approx(n * p, abs=5 * np.sqrt(n / rounds))
    cov = n * (np.diag(p) - np.outer(p, p))
    assert np.cov(fast.T) == pytest.approx(cov, abs=0.02 * n + 0.01)
    if n == 3:  # the whole distribution of a small case, against numpy's own multinomial
        exact = np.random.default_rng(99).multinomial(n, p, size=rounds)
        ours, theirs = Counter(map(tuple, fast.tolist())), Counter(map(tuple, exact.tolist()))
        assert ours.keys() == theirs.keys()
        for outcome, count in theirs.items():
            assert ours[outcome] == pytest.approx(count, abs=5 * math.sqrt(count) + 5)


def test_style_control_finds_a_planted_length_effect() -> None:
    rng = np.random.default_rng(5)
    n, m = 6000, 4
    truth = np.array([1000.0, 1000.0, 1000.0, 1000.0])
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    len_a = rng.integers(100, 1000, n)
    len_b = rng.integers(100, 1000, n)
    # longer answers win more often, whoever wrote them
    x = (len_a - len_b) / (len_a + len_b)
    p = 1 / (1 + np.exp(-(np.log(10) * (truth[a] - truth[b]) / 400 + 2.0 * x)))
    outcome = np.where(rng.random(n) < p, "a", "b")
    # model m00 writes long answers: without style control it looks better
    len_a = np.where(a == 0, len_a + 0, len_a)
    from apps.evaluation.leaderboard import style_counts

    battles = [
        (f"m{i}", f"m{j}", o, la, lb)
        for i, j, o, la, lb in zip(a, b, outcome, len_a, len_b, strict=True)
    ]
    result = leaderboard_from_counts(style_counts(battles), LeaderboardSettings(bootstrap=50))
    effect = result["method"]["style_control"]["effect"][0]
    assert effect["elo_per_sd"] > 50 and effect["lower"] > 0
    for model in result["models"]:
        assert model["rating"] == pytest.approx(1000, abs=40)


# --- PRD vicuna80 against FastChat ---------------------------------------------------------


@pytest.fixture(scope="module")
def prd():
    if not BATTLES.exists() or not REFERENCE.exists():
        pytest.skip("../shared/data/battles is absent: the FastChat reference test needs it")
    rows = [json.loads(line) for line in BATTLES.open()]
    reference = json.loads(REFERENCE.read_text())["prd_vicuna80_human_battles"]
    return rows, reference


def test_bradley_terry_matches_fastchat_within_a_hundredth(prd) -> None:
    rows, reference = prd
    counts = R.counts_from_battles(
        *zip(*((r["model_a"], r["model_b"], r["winner"]) for r in rows), strict=True)
    )
    fit = R.fit_bt(counts)
    for model, rating in zip(fit.models, fit.ratings, strict=True):
        assert rating == pytest.approx(reference["bt_current_lbfgs"][model], abs=0.01), model


def test_exact_fit_is_the_optimum_and_close_to_fastchat(prd) -> None:
    rows, reference = prd
    counts = R.counts_from_battles(
        *zip(*((r["model_a"], r["model_b"], r["winner"]) for r in rows), strict=True)
    )
    fit = R.fit_bt(counts, exact=True)
    for model, rating in zip(fit.models, fit.ratings, strict=True):
        assert rating == pytest.approx(reference["bt_current_lbfgs"][model], abs=0.05), model


def test_online_elo_equals_fastchat_k4(prd) -> None:
    rows, reference = prd
    elo = R.online_elo(((r["model_a"], r["model_b"], r["winner"]) for r in rows), k=4)
    for model, rating in reference["online_elo_k4"].items():
        assert elo[model] == pytest.approx(rating, abs=1e-6), model


def test_bootstrap_intervals_are_close_to_fastchats(prd) -> None:
    rows, reference = prd
    counts = R.counts_from_battles(
        *zip(*((r["model_a"], r["model_b"], r["winner"]) for r in rows), strict=True)
    )
    fit = R.fit_bt(counts, bootstrap=1000)
    for i, model in enumerate(fit.models):
        assert fit.lower[i] == pytest.approx(reference["bootstrap_bt_seed0_q025"][model], abs=8)
        assert fit.upper[i] == pytest.approx(reference["bootstrap_bt_seed0_q975"][model], abs=8)
