"""The audit of a judge against people: how often it agrees with the humans' choice, and where.

Input: human-labelled pairs (`LabelledPair`: prompt, reply A, reply B, the humans' choice "a" or
"b", and, where several people voted on the same pair, their votes). The judge answers every
pair in both orders (`compare_both_orders`). Numbers (docs/judges.md says how to read them):

- `agreement`: share of pairs where the judge's winner is the humans' (a judge's tie counts
  half), with a 95 % bootstrap interval; `agreement_decided` and its Wilson interval count only
  the pairs the judge decided.
- `kappa`: Cohen's kappa between the judge's labels (a, b, tie) and the humans' (scikit-learn):
  agreement corrected for what label frequencies alone would give; 0 is chance.
- `position_flip_rate`: share of pairs whose winner changes when A and B are swapped (a
  pointwise judge, which scores each reply alone, is 0 by construction).
- `length_bias`: agreement on the pairs where the humans chose the longer reply and on those
  where they chose the shorter one, and how often the judge and the humans pick the longer one.
- `curve`: for each confidence threshold, the share of pairs the judge certifies (confidence at
  or above it) and its precision on them, with the Wilson lower bound; `precision_at_30` reads
  the curve at 30 % coverage.
- `human_agreement`: where pairs carry several votes, how often two people agree on a pair (the
  reference line on the chart)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from apps.judges.kinds.base import Pair, Verdict
from apps.judges.stats import bootstrap_interval, wilson_interval

COVERAGES = [round(0.05 * i, 2) for i in range(1, 21)]


@dataclass
class LabelledPair:
    prompt: Any
    a: str
    b: str
    human: str  # "a" or "b": the reply the people preferred
    votes: list[str] = field(default_factory=list)  # several people's votes, where known
    ref: str = ""  # where the pair came from (event id, row number)


def humans_agreement(pairs: Sequence[LabelledPair]) -> dict[str, Any] | None:
    """How often two people who voted on the same pair agree (pairs with 2+ votes only)."""
    agree = total = 0
    counted = 0
    for pair in pairs:
        votes = [v for v in pair.votes if v in ("a", "b")]
        if len(votes) < 2:
            continue
        counted += 1
        a = votes.count("a")
        b = len(votes) - a
        agree += a * (a - 1) // 2 + b * (b - 1) // 2
        total += len(votes) * (len(votes) - 1) // 2
    if not total:
        return None
    return {"pairs": counted, "rater_pairs": total, "agreement": agree / total}


def audit(
    pairs: Sequence[LabelledPair],
    verdicts: Sequence[Verdict],
    *,
    seed: int = 0,
    bootstrap_rounds: int = 1000,
) -> dict[str, Any]:
    """Every number of the audit from the pairs and the judge's verdicts on them."""
    from sklearn.metrics import cohen_kappa_score

    n = len(pairs)
    if n == 0:
        raise ValueError("no labelled pairs to audit on")
    humans = [p.human for p in pairs]
    judged = [v.winner for v in verdicts]
    credit = [
        1.0 if j == h else 0.5 if j == "tie" else 0.0 for j, h in zip(judged, humans, strict=True)
    ]
    decided = [c for c, j in zip(credit, judged, strict=True) if j != "tie"]
    right = int(sum(decided))
    low, high = bootstrap_interval(credit, rounds=bootstrap_rounds, seed=seed)
    d_low, d_high = wilson_interval(right, len(decided))
    labels = sorted(set(humans) | set(judged))
    kappa = float(cohen_kappa_score(humans, judged, labels=labels)) if len(labels) > 1 else 0.0
    return {
        "pairs": n,
        "agreement": credit_mean(credit),
        "agreement_interval": [low, high],
        "decided": len(decided),
        "ties": n - len(decided),
        "agreement_decided": right / len(decided) if decided else None,
        "agreement_decided_interval": [d_low, d_high],
        "kappa": round(kappa, 4),
        "position_flip_rate": sum(v.flipped for v in verdicts) / n,
        "length_bias": length_bias(pairs, judged),
        "curve": coverage_curve(credit, [v.confidence for v in verdicts], judged),
        "precision_at_30": precision_at(0.30, credit, verdicts),
        "human_agreement": humans_agreement(pairs),
    }


def credit_mean(credit: Sequence[float]) -> float:
    return round(sum(credit) / len(credit), 4)


def length_bias(pairs: Sequence[LabelledPair], judged: Sequence[str]) -> dict[str, Any]:
    groups: dict[str, list[float]] = {"humans_chose_longer": [], "humans_chose_shorter": []}
    judge_longer = human_longer = decided = comparable = 0
    for pair, winner in zip(pairs, judged, strict=True):
        if len(pair.a) == len(pair.b):
            continue
        comparable += 1
        longer = "a" if len(pair.a) > len(pair.b) else "b"
        key = "humans_chose_longer" if pair.human == longer else "humans_chose_shorter"
        groups[key].append(1.0 if winner == pair.human else 0.5 if winner == "tie" else 0.0)
        human_longer += pair.human == longer
        if winner != "tie":
            decided += 1
            judge_longer += winner == longer
    return {
        key: {"pairs": len(values), "agreement": credit_mean(values) if values else None}
        for key, values in groups.items()
    } | {
        "judge_picks_longer": round(judge_longer / decided, 4) if decided else None,
        "humans_pick_longer": round(human_longer / comparable, 4) if comparable else None,
    }


def coverage_curve(
    credit: Sequence[float], confidence: Sequence[float], judged: Sequence[str]
) -> list[dict[str, float]]:
    """At each coverage (5 %, 10 %, … 100 % of the pairs, most confident first): the threshold
    that reaches it, the precision on the pairs certified and its Wilson lower bound. A tie is
    never certified."""
    order = sorted(
        (i for i in range(len(credit)) if judged[i] != "tie"), key=lambda i: -confidence[i]
    )
    n = len(credit)
    points = []
    for coverage in COVERAGES:
        take = int(round(coverage * n))
        if take == 0 or take > len(order):
            continue
        chosen = order[:take]
        right = int(sum(credit[i] for i in chosen))
        low, _ = wilson_interval(right, take)
        points.append(
            {
                "coverage": round(take / n, 4),
                "threshold": round(confidence[chosen[-1]], 4),
                "precision": round(right / take, 4),
                "precision_low": round(low, 4),
                "pairs": take,
            }
        )
    return points


def precision_at(
    coverage: float, credit: Sequence[float], verdicts: Sequence[Verdict]
) -> dict[str, float] | None:
    judged = [v.winner for v in verdicts]
    curve = coverage_curve(credit, [v.confidence for v in verdicts], judged)
    for point in curve:
        if point["coverage"] >= coverage - 1e-9:
            return point
    return None


def shuffled_positions(
    rows: Sequence[tuple[Any, str, str]], *, seed: int = 0, ref: Callable[[int], str] = str
) -> list[LabelledPair]:
    """(prompt, chosen, rejected) rows as pairs with the chosen reply on a random side, so
    that a judge that always says "A" scores 50 %, not 100 %."""
    rng = random.Random(seed)
    pairs = []
    for i, (prompt, chosen, rejected) in enumerate(rows):
        if rng.random() < 0.5:
            pairs.append(LabelledPair(prompt, chosen, rejected, "a", ref=ref(i)))
        else:
            pairs.append(LabelledPair(prompt, rejected, chosen, "b", ref=ref(i)))
    return pairs


def as_pairs(pairs: Sequence[LabelledPair]) -> list[Pair]:
    return [Pair(p.prompt, p.a, p.b) for p in pairs]
