"""A fixed, realistic corpus for judging: the same events, with the same client times, on every
run, so that what a change to the judging code decides can be compared event by event with what
an earlier version decided (tests/fixtures/quality/judging_corpus_verdicts.json).

From the fixture slices only (real texts: HH-RLHF turns, SMS spam and ham, PRD Vicuna-80 human
battles): ratings, edits and rankings from 60 raters over three hours, a tenth with comments
(spam, ham, keyboard mash, link injection), a text flooded by six raters across batches, a rater
who repeats one text, a rater bursting 25 events into a minute, 480 arena votes by the PRD
annotators (enough for the daily cap and the outlier test) and a brigader voting against the
crowd."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.quality.conftest import QUALITY_FIXTURES, hh_turns, sms_rows

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MODELS = ("llama3.1:8b", "qwen2.5:7b-instruct", "mistral-nemo:12b", "gemma2:9b")
FLOOD = "This model is the best, everyone should upgrade to the premium plan of this service today"
REPEATED = "Wrong again, this is the third time it ignores my question about the invoice"
MASH = ("asdfghjkl qwerty zxcvbnm sdfsdf", "jkljkljkl hjkhjkhjk lkjlkjlkj qweqwe")
LINKS = (
    "Great answer!! check out my channel www.best-deals.shop for more",
    "earn $500/day from home, dm me on telegram @fastcash_pro",
    "visit bit.ly/free-gift-card to claim your prize now",
)
VOTES = 480
# The knobs the corpus is judged under: lower than the defaults, so that a thousand events reach
# the daily vote cap and the outlier test too.
SETTINGS = {"QUALITY_DAILY_VOTE_CAP": 100, "QUALITY_OUTLIER_MIN_PAIR_VOTES": 6}


def _when(minutes: float) -> str:
    return (START + timedelta(minutes=minutes)).isoformat()


def corpus() -> list[dict[str, Any]]:
    """About 1,100 events in the order a front-end would send them."""
    rng = random.Random(2026)
    turns = hh_turns()
    prompts = [text for speaker, text in turns if speaker == "Human"]
    replies = [text for speaker, text in turns if speaker == "Assistant"]
    spam = [text for label, text in sms_rows() if label == "spam"]
    ham = [text for label, text in sms_rows() if label == "ham"]
    raters = [f"rater-{n}" for n in range(60)]
    events: list[tuple[float, dict[str, Any]]] = []

    def add(minute: float, event: dict[str, Any]) -> None:
        event.setdefault("id", f"c-{len(events)}")
        event.setdefault("timestamp", _when(minute))
        events.append((minute, event))

    for _ in range(520):
        minute = rng.uniform(0, 180)
        kind = rng.choices(("rating", "edit", "ranking"), (0.7, 0.2, 0.1))[0]
        event: dict[str, Any] = {
            "type": kind,
            "rater": rng.choice(raters),
            "model": rng.choice(MODELS),
            "messages": [{"role": "user", "content": rng.choice(prompts)}],
        }
        if kind == "rating":
            event.update(response=rng.choice(replies), rating=rng.choice((1, -1)))
        elif kind == "edit":
            original = rng.choice(replies)
            edited = rng.choice(replies + [original + " Thanks."])
            event.update(response=original, edited=edited if edited != original else edited + "!")
        else:
            event["responses"] = [
                {"model": m, "content": rng.choice(replies)} for m in rng.sample(MODELS, 3)
            ]
            event["ranking"] = rng.sample(range(3), 3)
        roll = rng.random()
        if roll < 0.05:
            event["comment"] = rng.choice(spam)
        elif roll < 0.10:
            event["comment"] = rng.choice(ham)
        elif roll < 0.12:
            event["comment"] = rng.choice(MASH)
        elif roll < 0.14:
            event["comment"] = rng.choice(LINKS)
        add(minute, event)
    for n in range(6):  # a flood: one text from six raters, spread over two hours
        for k in range(2):
            add(
                20 * n + 7 * k,
                {**_rating(rng, prompts, replies), "rater": f"flooder-{n}", "comment": FLOOD},
            )
    for k in range(5):  # one rater, one text, again and again
        add(
            30 + 11 * k,
            {**_rating(rng, prompts, replies), "rater": "repeater", "comment": REPEATED},
        )
    for k in range(25):  # 25 events within one minute
        add(90 + k * 2 / 60, {**_rating(rng, prompts, replies), "rater": "burster"})
    battles = [
        json.loads(line)
        for line in (QUALITY_FIXTURES / "prd_battles_slice.jsonl").read_text().splitlines()
    ]
    for i, battle in enumerate(battles[:VOTES]):
        add(i * 180 / VOTES, _vote(battle, battle["judge"]))
    crowd: dict[tuple[str, str], list[int]] = {}
    for battle in battles[:VOTES]:
        pair = tuple(sorted((battle["model_a"], battle["model_b"])))
        winner = {"model_a": battle["model_a"], "model_b": battle["model_b"]}.get(battle["winner"])
        counts = crowd.setdefault(pair, [0, 0])  # type: ignore[arg-type]
        if winner:
            counts[pair.index(winner)] += 1
    clear = [(pair, n) for pair, n in sorted(crowd.items()) if max(n) >= 0.65 * sum(n) >= 2]
    for i, ((lo, hi), (n_lo, n_hi)) in enumerate(clear * 3):
        loser = lo if n_lo < n_hi else hi
        record = {
            "question_id": i,
            "model_a": loser,
            "model_b": hi if loser == lo else lo,
            "winner": "model_a",
        }
        add(100 + i * 0.5, _vote(record, "brigader"))
    events.sort(key=lambda item: (item[0] + rng.uniform(-5, 5), item[1]["id"]))
    return [event for _, event in events]


def _rating(rng: random.Random, prompts: list[str], replies: list[str]) -> dict[str, Any]:
    return {
        "type": "rating",
        "model": rng.choice(MODELS),
        "messages": [{"role": "user", "content": rng.choice(prompts)}],
        "response": rng.choice(replies),
        "rating": -1,
    }


def _vote(record: dict[str, Any], rater: str) -> dict[str, Any]:
    return {
        "type": "preference",
        "rater": rater,
        "choice": {"model_a": 0, "model_b": 1}.get(record["winner"], "tie"),
        "messages": [{"role": "user", "content": f"Vicuna question {record['question_id']}"}],
        "responses": [
            {"model": record["model_a"], "content": "first answer"},
            {"model": record["model_b"], "content": "second answer"},
        ],
    }


def verdicts() -> dict[str, dict[str, Any]]:
    """Each stored event's current verdict, by client id: what a user of the verdicts sees."""
    from apps.quality.models import Verdict

    rows = Verdict.objects.filter(is_current=True).values_list(
        "event__client_id", "status", "score", "trust_weight", "reasons"
    )
    return {
        client_id: {
            "status": status,
            "score": round(score, 4),
            "trust_weight": round(trust, 4),
            "reasons": [[r["code"], r["message"]] for r in reasons],
        }
        for client_id, status, score, trust, reasons in rows
    }
