"""Simple rules as judges, each a pointwise score (order-free):

- `refusal`: a reply that refuses ("I can't help with that", "As an AI…") scores -1, others 0;
  `prefer: "answer"` (default) or `"refusal"` (a harmlessness set) flips the sign.
- `length`: log(1 + characters); `prefer: "longer"` (default) or `"shorter"`.
- `language`: 1 when the reply is written in the prompt's script (Latin, Cyrillic, Greek,
  Arabic, Hebrew, Devanagari, CJK, Hangul, …), 0 otherwise. A script, not a language: no
  language detector is installed, and a script mismatch is the failure that matters most.

A pair whose scores are equal is a tie with no confidence."""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from typing import Any

from apps.judges.kinds.base import BaseJudge, Prompt

RULES = ("refusal", "length", "language")

_REFUSAL = re.compile(
    r"\b(i (?:can(?:no|')t|cannot|won'?t|am not able to|'m not able to|am unable to|'m unable to)"
    r" (?:help|assist|provide|do|answer|comply|support)|i'm sorry,? but|i apologi[sz]e,? but|"
    r"as an ai(?: language model)?|i must decline|i (?:do not|don't) feel comfortable)",
    re.IGNORECASE,
)


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.search(text[:400]))


def script_of(text: str) -> str | None:
    """The most common writing system among the letters of TEXT (None without letters)."""
    counts: Counter[str] = Counter()
    for char in text:
        if not char.isalpha():
            continue
        name = unicodedata.name(char, "")
        script = name.split(" ")[0] if name else ""
        if script in {"CJK", "HIRAGANA", "KATAKANA"}:
            script = "CJK"
        counts[script] += 1
    return counts.most_common(1)[0][0] if counts else None


def prompt_text(prompt: Prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    users = [m.get("content", "") for m in prompt if m.get("role") == "user"]
    return str(users[-1] if users else (prompt[-1].get("content", "") if prompt else ""))


class RuleJudge(BaseJudge):
    pointwise = True

    def __init__(self, config: dict[str, Any]) -> None:
        self.rule = str(config.get("rule", ""))
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}, not {self.rule!r}")
        default = {"refusal": "answer", "length": "longer", "language": "same"}[self.rule]
        self.prefer = str(config.get("prefer", default))

    def score(self, items: list[tuple[Prompt, str]]) -> list[float]:
        return [self._score(prompt, reply) for prompt, reply in items]

    def _score(self, prompt: Prompt, reply: str) -> float:
        if self.rule == "refusal":
            value = -1.0 if is_refusal(reply) else 0.0
            return -value if self.prefer == "refusal" else value
        if self.rule == "length":
            value = math.log1p(len(reply))
            return -value if self.prefer == "shorter" else value
        wanted = script_of(prompt_text(prompt))
        return 1.0 if wanted is None or script_of(reply) in (wanted, None) else 0.0

    def compare_once(self, pairs: list[Any]) -> list[Any]:
        from apps.judges.kinds.base import Verdict, verdict_from_scores

        verdicts = []
        for pair in pairs:
            a, b = self._score(pair.prompt, pair.a), self._score(pair.prompt, pair.b)
            scale = 1.0 if self.rule == "length" else 0.25  # a rule that fires is sure of itself
            verdicts.append(
                Verdict(0.5, 0.0, False, a, b) if a == b else verdict_from_scores(a, b, scale=scale)
            )
        return verdicts
