"""The filters that read history: floods, velocity, rater reputation — through the database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from apps.quality.filters.reputation import vote_p_value
from apps.quality.models import RaterReputation
from tests.conftest import preference, rating
from tests.quality.conftest import QUALITY_FIXTURES, at, current, uid

pytestmark = pytest.mark.django_db(transaction=False)

FLOOD = "Best answer ever, everyone should try the pro version of this model today"


def test_a_comment_from_four_raters_is_a_flood_and_the_first_ones_are_judged_again(
    store, judge
) -> None:
    first = store([rating(id=uid(), rater=f"r{i}", comment=FLOOD) for i in range(2)])
    judge(first)
    assert {current(i).status for i in first} == {"accepted"}
    later = store(
        [rating(id=uid(), rater=f"r{i}", comment=FLOOD.upper() + "!!") for i in range(2, 4)]
    )
    judge(later)
    for event_id in first + later:
        assert current(event_id).reason_codes == ["flood.many_raters"], event_id
    assert "4 raters sent" in current(later[-1]).reasons[0]["message"]


def test_a_growing_flood_judges_its_earlier_members_again_only_until_they_are_flagged(
    store, judge
) -> None:
    # Each new copy once the flood is found used to judge every earlier copy again: work that
    # grew with the square of the flood (the pipeline's burst judged 22,500 of 253,000 events).
    first = store([rating(id=uid(), rater=f"g{i}", comment=FLOOD) for i in range(4)])
    judge(first)
    assert {current(i).status for i in first} == {"quarantined"}
    for n in range(4, 8):
        last = store([rating(id=uid(), rater=f"g{n}", comment=FLOOD)])
        summary = judge(last)
        assert summary.judged == 1, n  # the new copy alone: the others are flagged already
    assert "8 raters sent" in current(last[0]).reasons[0]["message"]
    assert current(first[0]).reason_codes == ["flood.many_raters"]


def test_a_near_duplicate_with_other_numbers_still_counts(store, judge) -> None:
    texts = [
        f"Earn {n}00 dollars a week from home, message me for the details of the plan"
        for n in range(4)
    ]
    ids = store([rating(id=uid(), rater=f"n{i}", comment=t) for i, t in enumerate(texts)])
    judge(ids)
    assert all("flood.many_raters" in current(i).reason_codes for i in ids)


def test_short_stock_phrases_from_many_raters_are_not_a_flood(store, judge) -> None:
    ids = store(
        [rating(id=uid(), rater=f"s{i}", comment="Thanks, great answer!") for i in range(8)]
    )
    judge(ids)
    assert {current(i).status for i in ids} == {"accepted"}


def test_one_rater_repeating_a_text_is_a_flood(store, judge) -> None:
    ids = store(
        [
            rating(
                id=uid(),
                rater="parrot",
                comment="this model is the best model in the whole world",
                timestamp=at(i * 30),
            )
            for i in range(4)
        ]
    )
    judge(ids)
    assert current(ids[-1]).reason_codes == ["flood.repeated"]


def test_a_burst_from_one_rater_is_quarantined_and_a_steady_rater_is_not(store, judge) -> None:
    burst = store([rating(id=uid(), rater="bot", rating=1) for _ in range(25)])
    steady = store(
        [rating(id=uid(), rater="human", rating=1, timestamp=at(i * 5)) for i in range(25)]
    )
    judge(burst + steady)
    assert current(burst[0]).reason_codes == ["velocity.rater_burst"]
    assert "25 events within a minute (limit 20)" in current(burst[0]).reasons[0]["message"]
    assert {current(i).status for i in steady} == {"accepted"}


@override_settings(QUALITY_IP_PER_MINUTE=10)
def test_a_burst_from_one_address_is_caught_across_raters(store, judge) -> None:
    ids = store([rating(id=uid(), rater=f"sock{i}") for i in range(12)], client_ip="198.51.100.7")
    judge(ids)
    assert "velocity.address_burst" in current(ids[0]).reason_codes


@override_settings(QUALITY_DAILY_VOTE_CAP=5, QUALITY_RATER_PER_MINUTE=0, QUALITY_RATER_PER_HOUR=0)
def test_votes_over_the_daily_cap_are_held(store, judge) -> None:
    ids = store([preference(id=uid(), rater="eager", timestamp=at(i * 10)) for i in range(7)])
    judge(ids)
    assert [current(i).status for i in ids] == ["accepted"] * 5 + ["quarantined"] * 2
    assert current(ids[-1]).reason_codes == ["reputation.daily_cap"]


def test_a_vote_against_a_strong_consensus_has_a_small_p_value() -> None:
    assert vote_p_value("lo", (90, 8, 2)) == 1.0
    assert vote_p_value("hi", (90, 8, 2)) < 0.12
    assert vote_p_value("hi", (3, 2, 1)) is None  # too few votes to say


def _battles() -> list[dict]:
    return [
        json.loads(line)
        for line in (QUALITY_FIXTURES / "prd_battles_slice.jsonl").read_text().splitlines()
    ]


def _vote(record: dict, rater: str, when: datetime) -> dict:
    choice = {"model_a": 0, "model_b": 1}.get(record["winner"], "tie")
    return preference(
        id=uid(),
        rater=rater,
        timestamp=when.isoformat(),
        choice=choice,
        messages=[{"role": "user", "content": f"Vicuna question {record['question_id']}"}],
        responses=[
            {"model": record["model_a"], "content": "first answer"},
            {"model": record["model_b"], "content": "second answer"},
        ],
    )


@override_settings(
    QUALITY_RATER_PER_MINUTE=0,
    QUALITY_RATER_PER_HOUR=0,
    QUALITY_IP_PER_MINUTE=0,
    QUALITY_IP_PER_HOUR=0,
    QUALITY_DAILY_VOTE_CAP=0,
)
def test_real_annotators_pass_the_outlier_test_and_a_brigader_does_not(store, judge) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    battles = _battles()
    ids = store([_vote(b, b["judge"], start + timedelta(minutes=i)) for i, b in enumerate(battles)])
    judge(ids)
    # The brigader votes for whichever model the crowd clearly liked less (on weakly decided pairs
    # a contrary vote is an honest difference of taste, and the test rightly says nothing).
    crowd: dict[tuple[str, str], list[int]] = {}
    for b in battles:
        pair = tuple(sorted((b["model_a"], b["model_b"])))
        winner = {"model_a": b["model_a"], "model_b": b["model_b"]}.get(b["winner"])
        crowd.setdefault(pair, [0, 0])
        if winner:
            crowd[pair][pair.index(winner)] += 1
    later = start + timedelta(days=2)
    votes = []
    clear = [(pair, counts) for pair, counts in crowd.items() if max(counts) >= 0.7 * sum(counts)]
    assert len(clear) >= 4
    for i, ((lo, hi), (n_lo, n_hi)) in enumerate(clear * 10):
        loser = lo if n_lo < n_hi else hi
        votes.append(
            _vote(
                {
                    "question_id": i,
                    "model_a": loser,
                    "model_b": hi if loser == lo else lo,
                    "winner": "model_a",
                },
                "brigader",
                later + timedelta(minutes=i),
            )
        )
    brigade = store(votes)
    judge(brigade)
    honest = RaterReputation.objects.filter(
        rater_hash__in=[current(i).event.rater_hash for i in ids[:1]]
    ).get()
    assert not honest.outlier
    assert (
        not RaterReputation.objects.filter(outlier=True)
        .exclude(rater_hash=current(brigade[0]).event.rater_hash)
        .exists()
    )
    assert "reputation.outlier" in current(brigade[-1]).reason_codes
    brigader = RaterReputation.objects.get(rater_hash=current(brigade[0]).event.rater_hash)
    assert brigader.outlier and brigader.trust <= 0.2
