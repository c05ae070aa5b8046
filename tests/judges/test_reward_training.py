"""Reward models as a training method: `method: rm` in the trainer (tiny model, real TRL)."""

from __future__ import annotations

import json

import pytest

from tests.judges.conftest import rm_spec_data


def test_a_reward_model_learns_a_learnable_preference_and_reports_its_interval(rm_run):
    metrics = rm_run.metrics
    assert not rm_run.cancelled
    assert metrics["eval_pairs"] == 16
    assert metrics["eval_pairwise_accuracy"] == 1.0
    assert metrics["eval_pairwise_accuracy_low"] < 1.0 <= metrics["eval_pairwise_accuracy_high"]
    assert metrics["eval_reward_margin"] > 0


def test_the_reward_adapter_keeps_its_score_head_and_names_its_base(rm_run, tiny_model):
    adapter = rm_run.adapter_dir
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["task_type"] == "SEQ_CLS"
    assert config["base_model_name_or_path"] == tiny_model
    from safetensors import safe_open

    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as weights:
        assert any("score" in key for key in weights.keys())


def test_a_reloaded_reward_model_scores_the_chosen_reply_higher(rm_run):
    from trainer.reward import RewardScorer

    scorer = RewardScorer.load(rm_run.adapter_dir)
    yes, no = scorer.score([("Is the sea deep?", "yes"), ("Is the sea deep?", "no")])
    assert yes > no


def test_a_reward_run_refuses_rows_that_are_not_pairs(tiny_model, tmp_path):
    from tests.judges.conftest import write_jsonl
    from trainer import JobSpec, SpecError

    bad = write_jsonl(tmp_path / "kto.jsonl", [{"prompt": "q", "completion": "a", "label": True}])
    data = rm_spec_data(tiny_model, {"train": bad, "test": bad}, tmp_path / "out")
    with pytest.raises(SpecError) as error:
        JobSpec.from_dict(data).validate()
    assert "missing chosen, rejected" in error.value.errors["dataset.train"]
