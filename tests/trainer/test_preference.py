"""Preference pairs: cut to length at the prompt's start (counted, never dropped), scored in
batches exactly as one at a time, and summarized with honest intervals."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest

from tests.trainer.conftest import write_jsonl
from trainer import run_job
from trainer.preference import (
    fit_pair,
    pair_logps,
    pair_metrics,
    sequence_logps,
    summary_rows,
    wilson,
)


def test_a_long_prompt_loses_its_start_and_the_reply_is_kept():
    prompt, chosen, rejected = list(range(100)), [1001, 1002, 1003], [2001]
    p, c, r, cut = fit_pair(prompt, chosen, rejected, 20)
    assert (c, r, cut) == (chosen, rejected, "prompt")
    assert p == prompt[-17:]  # the newest turns of the conversation
    assert len(p) + max(len(c), len(r)) == 20


def test_a_reply_longer_than_the_budget_keeps_a_quarter_for_the_prompt():
    p, c, r, cut = fit_pair(list(range(50)), list(range(100, 200)), [7], 40)
    assert cut == "reply" and len(p) == 10 and c == list(range(100, 130)) and r == [7]


def test_a_pair_that_fits_is_untouched():
    assert fit_pair([1, 2], [3], [4, 5], 16) == ([1, 2], [3], [4, 5], "")


def test_the_wilson_interval_is_the_textbook_one():
    low, high = wilson(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)
    low, high = wilson(10, 10)
    assert high == 1.0 and low == pytest.approx(0.7225, abs=1e-3)


def test_pair_metrics_compare_base_and_trained():
    base = [((-10.0, 5), (-9.0, 3)), ((-4.0, 2), (-8.0, 4))]  # base prefers chosen once in two
    trained = [((-8.0, 5), (-9.5, 3)), ((-3.0, 2), (-9.0, 4))]
    metrics = pair_metrics(base=base, trained=trained, beta=0.1)
    assert metrics["eval_base_logp_accuracy"] == 0.5 and metrics["eval_logp_accuracy"] == 1.0
    assert metrics["eval_base_logp_accuracy_normalized"] == 0.5  # -2/tok vs -3/tok; -2 vs -2
    assert metrics["eval_preference_accuracy"] == 1.0
    assert metrics["eval_reward_margin"] == pytest.approx(0.1 * ((2 + 0.5) + (1 + 1)) / 2)
    rows = summary_rows(metrics)
    assert [r["label"] for r in rows][-1] == "implicit reward prefers chosen"
    assert rows[0]["base"] == 0.5 and rows[0]["trained"] == 1.0


def test_batched_scoring_matches_one_sequence_at_a_time_and_makes_few_passes(tiny_model):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    sequences = [(list(range(5, 5 + n)), list(range(40, 40 + 1 + n % 4))) for n in range(1, 11)]
    calls = []
    hook = model.model.register_forward_hook(lambda *args: calls.append(1))  # the backbone
    batched = sequence_logps(model, sequences, pad_id=0, batch_size=4)
    hook.remove()
    assert len(calls) == 3  # 10 sequences, 4 at a time
    for (prompt, reply), (total, count) in zip(sequences, batched, strict=True):
        ids = torch.tensor([prompt + reply])
        with torch.no_grad():
            logps = torch.log_softmax(model(input_ids=ids).logits[0, :-1], dim=-1)
        expected = sum(float(logps[len(prompt) - 1 + i, token]) for i, token in enumerate(reply))
        assert count == len(reply)
        assert total == pytest.approx(expected, abs=1e-3)


def test_a_dpo_run_drops_no_pair_whose_prompt_alone_is_longer_than_max_length(make_spec, tmp_path):
    long_prompt = " ".join(["tell me more about the sky and the sea"] * 20)
    rows = [{"prompt": f"{i}. {long_prompt}", "chosen": "yes", "rejected": "no"} for i in range(12)]
    train = write_jsonl(tmp_path / "long.jsonl", rows)
    spec = make_spec("dpo", dataset={"train": [train]}, max_length=32, max_steps=2, eval_split=0.25)
    result = run_job(spec)
    # TRL alone drops every such row (its prompt fills max_length) and has nothing to train on.
    assert result.metrics["train_rows"] == 9
    assert result.metrics["train_rows_prompt_cut"] == 9
    assert result.metrics["eval_pairs"] == 3 and result.metrics["eval_rows_prompt_cut"] == 3
    card = json.loads((result.output_dir / "metrics.json").read_text())
    assert card["metrics"]["train_rows_prompt_cut"] == 9


def _lora_model(tiny_model):
    """The tiny model with a LoRA adapter that changes its outputs (B is not zero)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    config = LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)
    return get_peft_model(model, config).eval()


def _varied_pairs():
    """Prompts of 1 to 23 tokens (one too short to share), replies of 0 to 9 tokens."""
    return [
        (
            list(range(5, 5 + n * 2 + (n == 0))),
            list(range(40, 40 + n % 4 + 1)),
            list(range(90, 90 + (7 * n) % 10)),
        )
        for n in range(12)
    ]


@pytest.mark.parametrize("adapter", ["trained", "base"])
def test_scoring_pairs_with_a_shared_prompt_gives_the_numbers_of_scoring_each_reply_whole(
    tiny_model, adapter
):
    model = _lora_model(tiny_model)
    pairs = _varied_pairs()
    sequences = [(prompt, reply) for prompt, *replies in pairs for reply in replies]
    with model.disable_adapter() if adapter == "base" else contextlib.nullcontext():
        whole = sequence_logps(model, sequences, pad_id=0, batch_size=4)
        shared = pair_logps(model, pairs, pad_id=0, batch_size=4)
    assert len(shared) == len(pairs)
    for n, (chosen, rejected) in enumerate(shared):
        for got, expected in ((chosen, whole[2 * n]), (rejected, whole[2 * n + 1])):
            assert got[1] == expected[1]
            assert got[0] == pytest.approx(expected[0], abs=1e-4)
    assert shared[10][1] == (0.0, 0)  # an empty reply scores nothing


def test_scoring_pairs_runs_each_prompt_token_through_the_model_once(tiny_model):
    import torch

    model = _lora_model(tiny_model)
    pairs = [(list(range(5, 45)), [50, 51, 52], [60, 61]) for _ in range(4)]
    seen = []
    embed = model.get_input_embeddings()
    hook = embed.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    pair_logps(model, pairs, pad_id=0, batch_size=4)
    shared_tokens = sum(int(torch.count_nonzero(ids >= 0)) for ids in seen)
    seen.clear()
    sequence_logps(model, [(p, r) for p, *two in pairs for r in two], pad_id=0, batch_size=4)
    hook.remove()
    whole_tokens = sum(int(ids.numel()) for ids in seen)
    # whole: 4 sequences of 40 + 3 tokens, 4 of 40 + 2; shared: 4 prompts less their last
    # token, then 8 rows of that token and a reply (the shorter reply padded to 4)
    assert whole_tokens == 4 * 43 + 4 * 42
    assert shared_tokens == 4 * 39 + 8 * 4


def _projected_rows(monkeypatch):
    """Records how many positions each call of TRL's chunked LM-head kernel projects."""
    from trl.kernels import ChunkedLogProbFunction

    rows: list[int] = []
    original = ChunkedLogProbFunction.forward

    def forward(ctx, hidden, *args):
        rows.append(int(hidden.shape[0]))
        return original(ctx, hidden, *args)

    monkeypatch.setattr(ChunkedLogProbFunction, "forward", staticmethod(forward))
    return rows


def test_the_lm_head_projects_only_the_reply_tokens_onto_the_vocabulary(tiny_model, monkeypatch):
    model = _lora_model(tiny_model)
    pairs = [(list(range(5, 45)), [50, 51, 52], [60, 61]) for _ in range(4)]
    rows = _projected_rows(monkeypatch)
    pair_logps(model, pairs, pad_id=0, batch_size=4)
    assert sum(rows) == 4 * (3 + 2)  # not the padding after the shorter reply (8 rows x 4)
    rows.clear()
    sequence_logps(model, [(p, r) for p, *two in pairs for r in two], pad_id=0, batch_size=4)
    assert sum(rows) == 4 * (3 + 2)  # not the 40 prompt tokens of each of the 8 rows


def test_scoring_only_the_reply_tokens_gives_the_numbers_of_trls_fused_head(tiny_model):
    import torch

    model = _lora_model(tiny_model)
    sequences = [(list(range(5, 5 + n)), list(range(40, 42 + n % 5))) for n in range(1, 9)]
    compact = sequence_logps(model, sequences, pad_id=0, batch_size=4)
    for (prompt, reply), (total, count) in zip(sequences, compact, strict=True):
        ids = torch.tensor([prompt + reply])
        labels = torch.tensor([[-100] * len(prompt) + reply])
        with torch.inference_mode():
            fused = model(input_ids=ids, labels=labels, fused_lm_head=True).log_probs
        assert count == len(reply)
        assert total == pytest.approx(float(fused.sum()), abs=1e-4)


def test_a_second_run_on_the_same_pairs_reuses_the_base_log_probs(make_spec, tmp_path, monkeypatch):
    from trainer import run_job

    monkeypatch.setenv("SINKHOLE_TRAIN_LOGPS_CACHE", str(tmp_path / "logps"))
    seen: list[Any] = []
    # The reference of the steps is TRL's own here: the evaluation is what remembers.
    per_step = {"num_samples": 0, "seed": 1, "precompute_reference": False}
    first = run_job(make_spec("dpo", max_steps=1, **per_step))
    second = run_job(
        make_spec("dpo", max_steps=2, output_dir=str(tmp_path / "two"), **per_step),
        on_progress=seen.append,
    )
    assert first.metrics["eval_reference_cached"] == 0.0
    assert second.metrics["eval_reference_cached"] == 1.0
    assert len(list((tmp_path / "logps").glob("*.json"))) == 1
    # The base's numbers are the same whichever way they came; the evaluation scored only the
    # trained model's replies the second time.
    base = {k: v for k, v in first.metrics.items() if k.startswith("eval_base_")}
    assert base and base == {k: v for k, v in second.metrics.items() if k.startswith("eval_base_")}
    totals = {p.eval_total for p in seen if p.phase == "evaluating" and p.eval_total}
    assert totals == {2 * int(second.metrics["eval_pairs"])}, totals


def test_other_weights_or_pairs_are_not_served_from_the_cache(tmp_path):
    from trainer.preference import cached_pair_logps

    folder, calls = tmp_path / "logps", []

    def compute() -> Any:
        calls.append(1)
        return [((-1.5, 3), (-2.0, 4))]

    assert cached_pair_logps(folder, {"weights": "a", "pairs": [[1]]}, compute) == (
        [((-1.5, 3), (-2.0, 4))],
        False,
    )
    assert cached_pair_logps(folder, {"weights": "a", "pairs": [[1]]}, compute)[1] is True
    assert cached_pair_logps(folder, {"weights": "b", "pairs": [[1]]}, compute)[1] is False
    assert cached_pair_logps(folder, {"weights": "a", "pairs": [[2]]}, compute)[1] is False
    assert cached_pair_logps(None, {"weights": "a", "pairs": [[1]]}, compute)[1] is False
    assert len(calls) == 4


def test_a_precomputed_reference_trains_exactly_as_the_reference_run_in_every_step(
    make_spec, tmp_path, monkeypatch
):
    """DPO's default scores the base once before training; the steps' losses (which read the
    reference's log-probs) and the trained adapter's evaluation are those of TRL's per-step
    reference forward, to float precision."""
    monkeypatch.setenv("SINKHOLE_TRAIN_LOGPS_CACHE", "off")  # nothing remembered across runs
    common = {"max_steps": 3, "num_samples": 0, "seed": 3, "micro_batch_size": 2}
    seen: list[Any] = []
    ahead = run_job(
        make_spec("dpo", output_dir=str(tmp_path / "ahead"), **common), on_progress=seen.append
    )
    per_step = run_job(
        make_spec(
            "dpo", output_dir=str(tmp_path / "per-step"), precompute_reference=False, **common
        )
    )
    losses = [point["loss"] for point in ahead.loss_curve]
    assert len(losses) == 3
    assert losses == pytest.approx([point["loss"] for point in per_step.loss_curve], abs=1e-4)
    for key in ("eval_preference_accuracy", "eval_reward_margin", "eval_base_logp_accuracy"):
        assert ahead.metrics[key] == pytest.approx(per_step.metrics[key], abs=1e-3), key
    # The held-out pairs were scored with the reference: the evaluation ran the trained model only.
    assert ahead.metrics["eval_reference_cached"] == 1.0
    assert per_step.metrics["eval_reference_cached"] == 0.0
    pairs = ahead.metrics["train_rows"] + ahead.metrics["eval_pairs"]
    assert ahead.metrics["reference_pairs"] == pairs
    assert "reference_seconds" in ahead.metrics and "reference_seconds" not in per_step.metrics
    assert 0 < ahead.metrics["reference_eval_seconds"] <= ahead.metrics["reference_seconds"]
    # Its own phase, with progress over both sets' replies, before the first training report.
    phases = [p.phase for p in seen]
    assert phases.index("reference") < phases.index("training")
    totals = {p.eval_total for p in seen if p.phase == "reference"}
    assert totals == {2 * int(pairs)}, totals
    evaluating = {p.eval_total for p in seen if p.phase == "evaluating" and p.eval_total}
    assert evaluating == {2 * int(ahead.metrics["eval_pairs"])}, evaluating


def test_a_rerun_on_the_same_pairs_remembers_the_reference(make_spec, tmp_path, monkeypatch):
    monkeypatch.setenv("SINKHOLE_TRAIN_LOGPS_CACHE", str(tmp_path / "logps"))
    common = {"max_steps": 1, "num_samples": 0, "seed": 5}
    first = run_job(make_spec("dpo", output_dir=str(tmp_path / "one"), **common))
    second = run_job(make_spec("dpo", output_dir=str(tmp_path / "two"), **common))
    assert first.metrics["reference_pairs_remembered"] == 0.0
    assert second.metrics["reference_pairs_remembered"] == second.metrics["reference_pairs"]
    assert len(list((tmp_path / "logps").glob("*.json"))) == 2  # the training and held-out pairs
    assert second.loss_curve[0]["loss"] == pytest.approx(first.loss_curve[0]["loss"], abs=1e-6)


def test_a_cancel_while_the_reference_is_scored_ends_the_run_before_any_step(make_spec, tmp_path):
    asked: list[bool] = []

    def on_progress(progress: Any) -> None:
        if progress.phase == "reference":
            asked.append(True)

    result = run_job(
        make_spec("dpo", output_dir=str(tmp_path / "stop"), num_samples=0),
        on_progress=on_progress,
        should_stop=lambda: bool(asked),
    )
    assert asked and result.cancelled and result.steps == 0


def test_evaluating_an_adapter_refuses_what_it_cannot_score(make_spec, tmp_path):
    from trainer import SpecError, evaluate_adapter

    spec = make_spec("dpo", num_samples=0)
    spec.dataset.eval = list(spec.dataset.train)
    with pytest.raises(SpecError) as missing:
        evaluate_adapter(spec, tmp_path / "no-adapter")
    assert "adapter" in missing.value.errors
    spec.dataset.eval = []
    with pytest.raises(SpecError) as no_rows:
        evaluate_adapter(spec, tmp_path / "no-adapter")
    assert "dataset.eval" in no_rows.value.errors
