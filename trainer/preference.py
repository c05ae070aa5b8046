"""Preference pairs: fitting them into max_length without losing the reply, scoring many at once
without gradients, and the accuracies that say whether training moved the model.

Pure helpers (no torch at import); `sequence_logps` takes a model and token ids."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
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


def pair_logps(
    model: Any,
    pairs: Sequence[tuple[list[int], list[int], list[int]]],
    *,
    pad_id: int,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
) -> list[tuple[tuple[float, int], tuple[float, int]]]:
    """((sum of log p(chosen | prompt), tokens), (same for rejected)) per (prompt, chosen,
    rejected) ids, in order: what `sequence_logps` gives for (prompt, chosen) and (prompt,
    rejected), with the prompt, which the two replies share, run through the model once.

    A pass runs all but the prompt's last token with the KV cache on (no LM head), repeats the
    cache for the two replies, and scores [last prompt token + reply] on top of it with the
    fused LM head that training uses: the prompt's tokens are neither run twice nor projected
    onto the vocabulary. batch_size counts reply sequences a pass (batch_size // 2 pairs), so
    the peak stays that of `sequence_logps` at the same batch_size. A prompt of fewer than two
    tokens has nothing to share: such pairs go through `sequence_logps`. on_batch(n) is told
    the reply sequences scored after each pass."""
    import torch

    _ensure_fused_head(model)
    device = next(model.parameters()).device
    results: list[tuple[tuple[float, int], tuple[float, int]]] = [((0.0, 0), (0.0, 0))] * len(pairs)
    short = [i for i, pair in enumerate(pairs) if len(pair[0]) < 2]
    if short:
        scores = sequence_logps(
            model,
            [(pairs[i][0], pairs[i][k]) for i in short for k in (1, 2)],
            pad_id=pad_id,
            batch_size=batch_size,
            on_batch=on_batch,
        )
        for n, index in enumerate(short):
            results[index] = (scores[2 * n], scores[2 * n + 1])
    shared = [i for i, pair in enumerate(pairs) if len(pair[0]) >= 2]
    order = sorted(shared, key=lambda i: -(len(pairs[i][0]) + max(map(len, pairs[i][1:]))))
    per_pass = max(1, batch_size // 2)
    for start in range(0, len(order), per_pass):
        chunk = order[start : start + per_pass]
        with torch.inference_mode():
            sums, counts = _shared_prompt_pass(model, [pairs[i] for i in chunk], pad_id, device)
        for row, index in enumerate(chunk):
            results[index] = (
                (float(sums[2 * row]), int(counts[2 * row])),
                (float(sums[2 * row + 1]), int(counts[2 * row + 1])),
            )
        if on_batch is not None:
            on_batch(2 * len(chunk))
    return results


PairLogps = list[tuple[tuple[float, int], tuple[float, int]]]


def cached_pair_logps(
    folder: Path | None, identity: dict[str, Any] | None, compute: Callable[[], PairLogps]
) -> tuple[PairLogps, bool]:
    """`compute()`, remembered in FOLDER under a hash of IDENTITY (which must name everything
    the numbers depend on: the exact weights, the token ids, the device and dtype, the library
    versions); returns the log-probs and whether they came from the folder. The base model's
    log-probs of a dataset version's held-out pairs are the same for every run on it, so every
    run after the first skips half its evaluation. No folder or identity: computed, not kept.
    A cache that cannot be read or written costs the computation, nothing else."""
    if folder is None or identity is None:
        return compute(), False
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    path = folder / f"{digest}.json"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        return [((c[0], int(c[1])), (r[0], int(r[1]))) for c, r in stored], True
    except (OSError, ValueError, TypeError, IndexError):
        pass
    result = compute()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(result), encoding="utf-8")
        partial.replace(path)  # whole or absent: a reader never sees half a file
    except OSError:
        pass
    return result, False


def _shared_prompt_pass(
    model: Any, pairs: list[tuple[list[int], list[int], list[int]]], pad_id: int, device: Any
) -> tuple[Any, Any]:
    """Sums and counts of reply log-probs, rows (chosen, rejected) per pair. The prompts (less
    their last token) are right-padded in one row each; the replies follow them in the cache,
    each row starting with its prompt's last token (whose output predicts the reply's first),
    at the positions they have in the whole sequence, and masked from the padding between."""
    import torch

    prefixes = [prompt[:-1] for prompt, _, _ in pairs]
    width = max(map(len, prefixes))
    ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(pairs), width), dtype=torch.long)
    for row, prefix in enumerate(prefixes):
        ids[row, : len(prefix)] = torch.tensor(prefix)
        attention[row, : len(prefix)] = 1
    ids, attention = ids.to(device), attention.to(device)
    output = model(input_ids=ids, attention_mask=attention, use_cache=True, logits_to_keep=1)
    # transformers 5.25 renamed past_key_values to cache (in and out); older ones know the first.
    cache_name = "cache" if "cache" in getattr(output, "__dataclass_fields__", {}) else None
    cache = getattr(output, cache_name) if cache_name else output.past_key_values
    cache_name = cache_name or "past_key_values"
    cache.batch_repeat_interleave(2)

    replies = [(prompt[-1:] + reply, reply) for prompt, *two in pairs for reply in two]
    reply_width = max(len(whole) for whole, _ in replies)
    reply_ids = torch.full((len(replies), reply_width), pad_id, dtype=torch.long)
    reply_attention = torch.zeros((len(replies), reply_width), dtype=torch.long)
    targets = torch.full((len(replies), reply_width), -100, dtype=torch.long)
    for row, (whole, reply) in enumerate(replies):
        reply_ids[row, : len(whole)] = torch.tensor(whole)
        reply_attention[row, : len(whole)] = 1
        if reply:
            targets[row, : len(reply)] = torch.tensor(reply)  # already shifted: token i+1 at i
    starts = torch.tensor([len(prompt) - 1 for prompt, _, _ in pairs]).repeat_interleave(2)
    positions = starts[:, None] + torch.arange(reply_width)[None, :]
    inputs = {
        "input_ids": reply_ids.to(device),
        "attention_mask": torch.cat(
            [attention.repeat_interleave(2, dim=0), reply_attention.to(device)], dim=1
        ),
        "position_ids": positions.to(device),
        cache_name: cache,
    }
    targets = targets.to(device)
    mask = targets != -100
    log_probs = _target_log_probs(model, inputs, targets)
    if log_probs is not None:
        return log_probs.sum(dim=1), mask.sum(dim=1)
    try:
        log_probs = model(**inputs, shift_labels=targets, fused_lm_head=True).log_probs
    except TypeError:  # a forward without TRL's fused head: one row's logits at a time
        logits = model(**inputs).logits
        log_probs = torch.stack(
            [
                torch.log_softmax(logits[row].float(), dim=-1)
                .gather(-1, targets[row].clamp(min=0).unsqueeze(-1))
                .squeeze(-1)
                for row in range(logits.shape[0])
            ]
        )
    per_token = log_probs.float() * mask
    return per_token.sum(dim=1), mask.sum(dim=1)


def _ensure_fused_head(model: Any) -> None:
    """The LM head that training uses (TRL's, in tiles, no full logits), added where TRL has not
    added it already (a model loaded for scoring alone). Generation is unchanged by it."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if "forward" in vars(base):  # TRL patches the instance's forward
        return
    from trl.trainer.utils import add_fused_lm_head

    add_fused_lm_head(base)


VOCAB_CHUNK = 32_768  # vocabulary columns a tile of the head projects at once (TRL's default)


def _target_log_probs(
    model: Any, inputs: dict[str, Any], targets: Any, *, shifted: bool = True
) -> Any | None:
    """log p(target) at each position that has a target (0 where it is -100), shape of targets.

    The backbone runs on every position; the LM head only on the positions with a target, in
    float32 tiles of the vocabulary (TRL's chunked log-prob kernel, no full logits). On a GPU,
    TRL's fused head does the same; on a CPU it projects every position, prompt and padding
    included. shifted=False: the backbone's output at i predicts targets[i], which is the
    labels already shifted by one (the last position's output is not needed). None where the
    model scales or caps its logits (Gemma, Granite …): those keep TRL's fused head."""
    import torch
    from trl.kernels import ChunkedLogProbFunction

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings()
    config = base.config.get_text_config()
    scaled = any(
        getattr(config, name, None) is not None
        for name in (
            "final_logit_softcapping",
            "logit_scale",
            "output_multiplier",
            "lm_head_multiplier",
            "logits_scaling",
        )
    )
    if head is None or scaled or not hasattr(base, "base_model"):
        return None
    hidden = base.base_model(**inputs, use_cache=False).last_hidden_state
    if not shifted:
        hidden = hidden[:, :-1]
    mask = targets != -100
    log_probs = torch.zeros(targets.shape, dtype=torch.float32, device=hidden.device)
    if bool(mask.any()):
        with torch.autocast(hidden.device.type, enabled=False):  # the head in float32
            picked = ChunkedLogProbFunction.apply(
                hidden[mask].float(),
                head.weight,
                head.bias,
                targets[mask],
                1.0,
                VOCAB_CHUNK,
                None,
                1.0,
                ("log_probs",),
            )[0]
        log_probs[mask] = picked.float()
    return log_probs


def _per_token_logps(
    model: Any, ids: Any, attention: Any, labels: Any, *, fused: bool
) -> tuple[Any, bool]:
    import torch

    compact = _target_log_probs(
        model, {"input_ids": ids, "attention_mask": attention}, labels[:, 1:], shifted=False
    )
    if compact is not None:
        return compact, fused
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
