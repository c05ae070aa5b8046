"""The one shape every judge has, and the both-orders rule."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# A prompt is plain text or a list of chat messages; a reply is text.
Prompt = Any


@dataclass(frozen=True)
class Pair:
    prompt: Prompt
    a: str
    b: str


@dataclass(frozen=True)
class Verdict:
    """`preference`: the judge's probability that A is the better reply (0.5: a tie).
    `confidence`: how sure it is, 0..1 (|2 * preference - 1| for a calibrated judge).
    `flipped`: asked in both orders, the two answers disagreed (counted as a tie)."""

    preference: float
    confidence: float
    flipped: bool = False
    score_a: float | None = None
    score_b: float | None = None

    @property
    def winner(self) -> str:
        if self.flipped or self.preference == 0.5:
            return "tie"
        return "a" if self.preference > 0.5 else "b"


class NoPointwiseScore(TypeError):
    """The judge compares two replies but does not score one alone (an LLM judge's prompt is
    pairwise): call `compare` instead."""


class BaseJudge:
    """Subclasses implement `score` (pointwise, when they can) and/or `compare_once`."""

    pointwise = False  # True: the verdict does not depend on the order (scores are compared)

    def score(self, items: list[tuple[Prompt, str]]) -> list[float]:
        raise NoPointwiseScore(f"{type(self).__name__} gives no pointwise score")

    def compare_once(self, pairs: list[Pair]) -> list[Verdict]:
        """One verdict per pair in the order given. Default: compare pointwise scores."""
        scores = self.score([(p.prompt, p.a) for p in pairs] + [(p.prompt, p.b) for p in pairs])
        n = len(pairs)
        return [verdict_from_scores(scores[i], scores[n + i]) for i in range(n)]

    def compare(self, pairs: list[Pair]) -> list[Verdict]:
        return compare_both_orders(self, pairs)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x))))


def verdict_from_scores(score_a: float, score_b: float, *, scale: float = 1.0) -> Verdict:
    """Bradley-Terry: P(A over B) = sigmoid((score_a - score_b) / scale)."""
    preference = sigmoid((score_a - score_b) / scale)
    return Verdict(preference, abs(2 * preference - 1), False, score_a, score_b)


def compare_both_orders(judge: BaseJudge, pairs: list[Pair]) -> list[Verdict]:
    """Every pair asked as (A, B) and as (B, A). A pointwise judge is order-free and asked once.
    When the two orders name different winners the verdict is a tie with no confidence
    (`flipped`); otherwise the two probabilities are averaged."""
    if judge.pointwise:
        return judge.compare_once(pairs)
    forward = judge.compare_once(pairs)
    backward = judge.compare_once([Pair(p.prompt, p.b, p.a) for p in pairs])
    verdicts = []
    for first, second in zip(forward, backward, strict=True):
        swapped = Verdict(1 - second.preference, second.confidence)
        if {first.winner, swapped.winner} == {"a", "b"}:
            verdicts.append(Verdict(0.5, 0.0, True))
            continue
        preference = (first.preference + swapped.preference) / 2
        confidence = min(first.confidence, swapped.confidence)
        if first.winner == "tie" or swapped.winner == "tie":
            confidence = 0.0 if preference == 0.5 else confidence / 2
        verdicts.append(Verdict(preference, confidence))
    return verdicts
