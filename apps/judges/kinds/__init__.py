"""Judges of one shape: each kind takes (prompt, reply) for a score or (prompt, reply A, reply B)
for a preference with a confidence. One module per kind, the same shape in each:

- `reward_model.py`: a reward-model checkpoint (trainer/reward.py), Bradley-Terry preference
- `llm.py`: an LLM through any OpenAI-compatible endpoint, with a documented pairwise prompt
- `rules.py`: refusal, length and language (script) rules

`build(kind, config, checkpoint)` returns the judge; `compare_both_orders` asks every pair in
both orders and counts a disagreement as a tie."""

from __future__ import annotations

from typing import Any

from apps.judges.kinds.base import BaseJudge, Pair, Verdict, compare_both_orders

KINDS = ("reward_model", "llm", "rule")


def build(kind: str, config: dict[str, Any], checkpoint: Any = None) -> BaseJudge:
    if kind == "reward_model":
        from apps.judges.kinds.reward_model import RewardModelJudge

        return RewardModelJudge(config, checkpoint)
    if kind == "llm":
        from apps.judges.kinds.llm import LlmJudge

        return LlmJudge(config)
    if kind == "rule":
        from apps.judges.kinds.rules import RuleJudge

        return RuleJudge(config)
    raise ValueError(f"unknown judge kind {kind!r}")


__all__ = ["KINDS", "BaseJudge", "Pair", "Verdict", "build", "compare_both_orders"]
