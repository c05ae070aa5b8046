"""Preference pairs: cut to length at the prompt's start (counted, never dropped), scored in
batches exactly as one at a time, and summarized with honest intervals."""

from __future__ import annotations

import json

import pytest

from tests.trainer.conftest import write_jsonl
from trainer import run_job
from trainer.preference import fit_pair, pair_metrics, sequence_logps, summary_rows, wilson


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
    hook = model.register_forward_hook(lambda *args: calls.append(1))
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
