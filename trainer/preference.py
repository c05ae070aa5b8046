"""Preference pairs: fitting them into max_length without losing the reply, scoring many at once
without gradients, and the accuracies that say whether training moved the model.

Pure helpers (no torch at import); `sequence_logps` takes a model and token ids."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

MIN_PROMPT_SHARE = 0.25  # a reply longer than the budget still keeps this much of its prompt


def fit_pair(
    prompt: list[int], chosen: list[int], rejected: list[int], max_length: int
) -> tuple[list[int], list[int], list[int], str]:
    """Cut a pair to max_length tokens (prompt + the longer reply), dropping the prompt's start,
    which is the oldest turn of the conversation, rather than the reply DPO learns from. A reply
    longer than the budget keeps a quarter of it for the prompt's end and loses its own end.

    Returns the three id lists and what was cut: "" (nothing), "prompt" or "reply"."""
    longest = max(len(chosen), len(rejected))
    if len(prompt) + longest <= max_length:
        return prompt, chosen, rejected, ""
    keep_prompt = max(max_length - longest, min(len(prompt), int(max_length * MIN_PROMPT_SHARE)))
    keep_prompt = min(keep_prompt, len(prompt), max_length - 1)
    reply_budget = max_length - keep_prompt
    cut = "reply" if longest > reply_budget else "prompt"
    kept = prompt[len(prompt) - keep_prompt :] if keep_prompt else []
    return kept, chosen[:reply_budget], rejected[:reply_budget], cut


def wilson(successes: float, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95 % by default) of a proportion: honest at small n and near
    0 or 1, where the normal approximation is not."""
    if total <= 0:
        return 0.0, 1.0
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def sequence_logps(
    model: Any,
    sequences: Sequence[tuple[list[int], list[int]]],
    *,
    pad_id: int,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
) -> list[tuple[float, int]]:
    """(sum of log p(reply | prompt), reply tokens) per (prompt ids, reply ids), in order.

    No gradients; sequences are sorted by length and scored batch_size at a time, so a batch
    pads little. Uses TRL's fused LM head when the model has one (no full float32 logits);
    otherwise log-softmax one sequence's logits at a time. on_batch(n) is told after each batch."""
    import torch

    _ensure_fused_head(model)
    device = next(model.parameters()).device
    order = sorted(range(len(sequences)), key=lambda i: -sum(map(len, sequences[i])))
    results: list[tuple[float, int]] = [(0.0, 0)] * len(sequences)
    fused = True  # until a forward shows it has no fused head
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(sequences[i][0]) + len(sequences[i][1]) for i in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        for row, index in enumerate(chunk):
            prompt, reply = sequences[index]
            whole = prompt + reply
            ids[row, : len(whole)] = torch.tensor(whole)
            attention[row, : len(whole)] = 1
            labels[row, len(prompt) : len(whole)] = torch.tensor(reply, dtype=torch.long)
        ids, attention, labels = ids.to(device), attention.to(device), labels.to(device)
        with torch.inference_mode():
            per_token, fused = _per_token_logps(model, ids, attention, labels, fused=fused)
        mask = labels[:, 1:] != -100
        sums = (per_token * mask).sum(dim=1)
        counts = mask.sum(dim=1)
        for row, index in enumerate(chunk):
            results[index] = (float(sums[row]), int(counts[row]))
        if on_batch is not None:
            on_batch(len(chunk))
    return results


def _ensure_fused_head(model: Any) -> None:
    """The LM head that training uses (TRL's, in tiles, no full logits), added where TRL has not
    added it already (a model loaded for scoring alone). Generation is unchanged by it."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if "forward" in vars(base):  # TRL patches the instance's forward
        return
    from trl.trainer.utils import add_fused_lm_head

    add_fused_lm_head(base)


def _per_token_logps(
    model: Any, ids: Any, attention: Any, labels: Any, *, fused: bool
) -> tuple[Any, bool]:
    import torch

    if fused:
        try:
            output = model(
                input_ids=ids, attention_mask=attention, labels=labels, fused_lm_head=True
            )
        except TypeError:  # a forward that takes no such argument
            output = None
        log_probs = getattr(output, "log_probs", None)
        if log_probs is not None:
            return log_probs[:, -(ids.shape[1] - 1) :].float(), True
    rows = []
    for row in range(ids.shape[0]):  # one sequence's logits at a time
        logits = model(input_ids=ids[row : row + 1], attention_mask=attention[row : row + 1]).logits
        logps = torch.log_softmax(logits[0, :-1].float(), dim=-1)
        targets = labels[row, 1:].clamp(min=0)
        rows.append(logps.gather(-1, targets.unsqueeze(-1)).squeeze(-1))
    return torch.stack(rows), False


def pair_metrics(
    *,
    base: Sequence[tuple[tuple[float, int], tuple[float, int]]],
    trained: Sequence[tuple[tuple[float, int], tuple[float, int]]],
    beta: float,
    prefix: str = "eval_",
) -> dict[str, float]:
    """Base and trained preference metrics over pairs ((chosen logp, n), (rejected logp, n)).

    - logp_accuracy: the model gives the chosen reply a higher log-probability than the rejected
      one (also per token: `_normalized`), for the base (`base_...`) and the trained model;
    - preference_accuracy: the implicit reward beta * (log p_trained - log p_base) of the chosen
      reply beats the rejected one's (the base scores 50 %: every margin is 0);
    each with a 95 % Wilson interval (`_low`, `_high`)."""
    pairs = len(trained)
    if not pairs:
        return {}
    out: dict[str, float] = {f"{prefix}pairs": float(pairs)}

    def accuracy(name: str, wins: float) -> None:
        low, high = wilson(wins, pairs)
        out[f"{prefix}{name}"] = _round(wins / pairs)
        out[f"{prefix}{name}_low"] = _round(low)
        out[f"{prefix}{name}_high"] = _round(high)

    for label, scores in (("base_", base), ("", trained)):
        accuracy(f"{label}logp_accuracy", sum(c[0] > r[0] for c, r in scores))
        accuracy(
            f"{label}logp_accuracy_normalized",
            sum(c[0] / max(1, c[1]) > r[0] / max(1, r[1]) for c, r in scores),
        )
    chosen = [beta * (t[0][0] - b[0][0]) for t, b in zip(trained, base, strict=True)]
    rejected = [beta * (t[1][0] - b[1][0]) for t, b in zip(trained, base, strict=True)]
    margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
    accuracy("preference_accuracy", sum(m > 0 for m in margins))
    out[f"{prefix}reward_margin"] = _round(sum(margins) / pairs)
    out[f"{prefix}reward_chosen"] = _round(sum(chosen) / pairs)
    out[f"{prefix}reward_rejected"] = _round(sum(rejected) / pairs)
    return out


def summary_rows(metrics: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The base → trained rows of a DPO run's evaluation (accuracies with 95 % intervals), for
    the run and checkpoint pages; empty when the run has none."""
    metrics = metrics or {}
    rows = []
    for key, label in (
        ("logp_accuracy", "log-prob prefers chosen"),
        ("logp_accuracy_normalized", "log-prob per token prefers chosen"),
    ):
        if f"eval_{key}" in metrics and f"eval_base_{key}" in metrics:
            rows.append(
                {
                    "label": label,
                    "base": metrics[f"eval_base_{key}"],
                    "base_low": metrics.get(f"eval_base_{key}_low"),
                    "base_high": metrics.get(f"eval_base_{key}_high"),
                    "trained": metrics[f"eval_{key}"],
                    "low": metrics.get(f"eval_{key}_low"),
                    "high": metrics.get(f"eval_{key}_high"),
                }
            )
    if "eval_preference_accuracy_low" in metrics:
        rows.append(
            {
                "label": "implicit reward prefers chosen",
                "base": 0.5,  # the base against itself: every margin is 0, a coin flip
                "base_low": None,
                "base_high": None,
                "trained": metrics["eval_preference_accuracy"],
                "low": metrics.get("eval_preference_accuracy_low"),
                "high": metrics.get("eval_preference_accuracy_high"),
            }
        )
    return rows


def _round(value: float) -> float:
    return float(f"{float(value):.6g}")
