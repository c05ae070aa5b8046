"""A reward-model checkpoint (kind `reward` in the registry, trained by `train --method rm`) as
a judge: each reply gets a scalar reward; P(A over B) = sigmoid((r_A - r_B) / scale), the
Bradley-Terry model the reward trainer's loss fits. Order-free, so it is asked once per pair.

Loaded once per process and kept (torch and transformers load only when it first scores)."""

from __future__ import annotations

import threading
from typing import Any

from apps.judges.kinds.base import BaseJudge, Pair, Prompt, Verdict, verdict_from_scores
from apps.serving.backends import adapter_dir

_SCORERS: dict[str, Any] = {}
_LOCK = threading.Lock()


def reward_adapter_dir(checkpoint: Any) -> str:
    folder = adapter_dir(checkpoint)
    if folder is None:
        raise ValueError(f"{checkpoint.name} has no adapter files")
    return folder


def load_scorer(folder: str, base_model: str, device: str = "auto") -> Any:
    with _LOCK:
        scorer = _SCORERS.get(folder)
        if scorer is None:
            from trainer.reward import RewardScorer

            scorer = RewardScorer.load(folder, base_model=base_model, device=device)
            _SCORERS.clear()  # one reward model in memory at a time
            _SCORERS[folder] = scorer
        return scorer


class RewardModelJudge(BaseJudge):
    pointwise = True

    def __init__(self, config: dict[str, Any], checkpoint: Any) -> None:
        if checkpoint is None:
            raise ValueError("a reward-model judge needs a checkpoint")
        self.checkpoint = checkpoint
        self.scale = float(config.get("scale", 1.0))
        self.batch = int(config.get("batch", 16))
        self.device = str(config.get("device", "auto"))

    def _scorer(self) -> Any:
        return load_scorer(
            reward_adapter_dir(self.checkpoint), self.checkpoint.base_model.model_id, self.device
        )

    def score(self, items: list[tuple[Prompt, str]]) -> list[float]:
        return self._scorer().score(list(items), batch=self.batch)

    def compare_once(self, pairs: list[Pair]) -> list[Verdict]:
        scores = self.score([(p.prompt, p.a) for p in pairs] + [(p.prompt, p.b) for p in pairs])
        n = len(pairs)
        return [verdict_from_scores(scores[i], scores[n + i], scale=self.scale) for i in range(n)]
