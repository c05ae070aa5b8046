"""Fit a run to the machine before anything is loaded: estimate the peak memory of a training
step from the model's config.json, pick the micro-batch and gradient checkpointing that fit, and
refuse (one clear SpecError) a spec that cannot fit.

Where the memory of a LoRA step goes (SmolLM2-135M, float32, 256 tokens a sequence): the frozen
weights (0.5 GB), the activations kept for the backward pass (about 2.7 MB per token through
30 layers: the dominant term, linear in rows per forward pass), and a fixed cost for torch,
tokenizers, the data and allocator slack (about 1.1 GB). The logits are not in the list: TRL's fused LM head scores
the reply tokens in tiles without materializing (tokens x vocabulary) floats, and the reference
model is the same weights with the adapter switched off (no second copy).

Policy:
- CPU: one row per forward pass (KTO: two), the optimizer step reached by accumulation. A CPU is busy at a
  few hundred tokens already, so bigger forward passes buy no speed, and one row means no padding
  (more real tokens a second, not fewer). Checkpointing only if even that does not fit.
- GPU: the largest divisor of batch_size whose estimate fits; then checkpointing; then refuse.

The estimate is calibrated on measurements (bench/train.py, docs/benchmarks.md) and errs high."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GIB = 1 << 30
MIB = 1 << 20
# Fraction of the free memory a run may plan to use; the rest is for the OS and other processes.
FREE_SHARE = 0.8
# Interpreter, torch, transformers, TRL, datasets, the tokenizer and allocator slack: calibrated
# on a default DPO run of SmolLM2 on HH-RLHF (3.09 GiB peak RSS after 7 steps; docs/benchmarks.md).
FIXED_CPU_BYTES = 1100 * MIB
FIXED_GPU_BYTES = 400 * MIB  # CUDA context and allocator slack (on the GPU, not in RAM)


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs from a model's config.json."""

    parameters: int
    layers: int
    hidden: int
    intermediate: int
    heads: int
    vocab: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelShape:
        text = config.get("text_config") or config
        hidden = int(text.get("hidden_size") or text.get("n_embd") or 768)
        layers = int(text.get("num_hidden_layers") or text.get("n_layer") or 12)
        intermediate = int(text.get("intermediate_size") or 4 * hidden)
        heads = int(text.get("num_attention_heads") or text.get("n_head") or 12)
        kv_heads = int(text.get("num_key_value_heads") or heads)
        vocab = int(text.get("vocab_size") or 32000)
        head_dim = hidden // max(1, heads)
        attention = hidden * (hidden + 2 * kv_heads * head_dim) + hidden * hidden
        mlp = 3 * hidden * intermediate
        embeddings = vocab * hidden * (1 if text.get("tie_word_embeddings", True) else 2)
        return cls(
            parameters=layers * (attention + mlp) + embeddings,
            layers=layers,
            hidden=hidden,
            intermediate=intermediate,
            heads=heads,
            vocab=vocab,
        )

    @classmethod
    def from_folder(cls, folder: str | Path) -> ModelShape | None:
        path = Path(folder) / "config.json"
        if not path.is_file():
            return None
        return cls.from_config(json.loads(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class MemoryPlan:
    """The micro-batch and checkpointing a run uses, with the numbers that chose them."""

    micro_batch_size: int
    gradient_checkpointing: bool
    estimate_bytes: int
    free_bytes: int
    device: str

    def describe(self) -> str:
        where = "GPU memory" if self.device == "cuda" else "RAM"
        return (
            f"micro-batch {self.micro_batch_size}, gradient checkpointing "
            f"{'on' if self.gradient_checkpointing else 'off'}: about "
            f"{self.estimate_bytes / GIB:.1f} GiB of {self.free_bytes / GIB:.1f} GiB free {where}"
        )


def sequences_per_row(method: str) -> int:
    """Sequences one row puts through the forward pass: DPO a chosen and a rejected reply, KTO a
    completion and its mismatched KL completion, SFT one conversation."""
    return 2 if method in ("dpo", "kto") else 1


def activation_bytes_per_token(
    shape: ModelShape, *, max_length: int, checkpointing: bool, dtype_bytes: int
) -> int:
    """Bytes kept for the backward pass per token. Per layer: the hidden states around the
    attention and MLP blocks (with LoRA's dropout copies of each adapted input), the MLP's wide
    intermediates, and one row of attention probabilities per head."""
    per_layer = (
        24 * shape.hidden + 7 * shape.intermediate + shape.heads * max_length
    ) * dtype_bytes
    if checkpointing:  # one hidden state per layer boundary, plus one layer recomputed at a time
        return shape.layers * shape.hidden * dtype_bytes + per_layer
    return shape.layers * per_layer


def estimate_step_bytes(
    shape: ModelShape,
    *,
    method: str,
    micro_batch_size: int,
    max_length: int,
    checkpointing: bool,
    dtype_bytes: int = 4,
    device: str = "cpu",
) -> int:
    """Upper estimate of the peak memory of one training step (RAM on a CPU, GPU memory on a GPU)."""
    tokens = micro_batch_size * sequences_per_row(method) * max_length
    weights = shape.parameters * dtype_bytes
    activations = tokens * activation_bytes_per_token(
        shape, max_length=max_length, checkpointing=checkpointing, dtype_bytes=dtype_bytes
    )
    # The fused LM head's tiles and the gradient of the last hidden state.
    head = tokens * (shape.hidden * 4 + 4096 * 4)
    fixed = FIXED_GPU_BYTES if device == "cuda" else FIXED_CPU_BYTES
    return int(fixed + weights + activations + head)


def free_memory(device: str) -> int:
    """Bytes free now: MemAvailable (psutil) for a CPU run, free device memory for a GPU run."""
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    import psutil

    return int(psutil.virtual_memory().available)


PRECISIONS = ("bf16", "fp32")
# CPU flags of native bfloat16 matrix products: Intel AMX (Sapphire Rapids on) and AVX-512
# BF16 (Cooper Lake, Zen 4 on). Without them oneDNN emulates bf16, slower than float32.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_bf16_supported(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (see CPU_BF16_FLAGS), from the
    flags of /proc/cpuinfo (or the text given); False where they cannot be read (not Linux)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
                cpuinfo = file.read()
        except OSError:
            return False
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in {"flags", "Features"}:
            flags.update(value.split())
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def use_bf16(device: str, bf16_supported: bool, precision: str | None = None) -> bool:
    """bf16 compute where the device has it natively and it pays.

    - A GPU with bf16: bf16 by default (weights in bf16, half the memory, same range as fp32).
    - A CPU: float32 by default. With AMX or AVX-512 BF16, autocast made a SmolLM2 forward
      and backward 2.4x faster in isolation, but a whole DPO step only 0.79x of float32's CPU
      time (the LoRA step also casts the frozen weights on every pass and runs the head's
      softmax in float32), and bf16 rounding moved the policy/reference log-ratio, which DPO
      reads, by more than a step of learning does (docs/benchmarks.md, issue 16, session 7).
      precision="bf16" asks for it; it is granted only where the CPU has it natively
      (emulated bf16 is slower than float32), else float32.
    - precision="fp32": float32 everywhere; an older GPU's fp16 would need loss scaling."""
    if precision == "fp32":
        return False
    if precision == "bf16":
        return bf16_supported
    return device == "cuda" and bf16_supported


def _divisors_descending(number: int) -> list[int]:
    return [d for d in range(number, 0, -1) if number % d == 0]


def plan_memory(
    *,
    shape: ModelShape,
    method: str,
    batch_size: int,
    max_length: int,
    device: str,
    free_bytes: int,
    dtype_bytes: int = 4,
    micro_batch_size: int | None = None,
    gradient_checkpointing: bool | None = None,
) -> MemoryPlan:
    """Choose what the spec left open (micro_batch_size, gradient_checkpointing) so that one
    step fits FREE_SHARE of the free memory; raise MemoryError with what to change when nothing
    does. Values the spec set are kept as they are (and refused if they cannot fit)."""
    budget = int(free_bytes * FREE_SHARE)
    # KTO's KL term pairs each row with another row's completion: it needs two rows a pass.
    least = 2 if method == "kto" and batch_size >= 2 else 1
    if micro_batch_size is not None:
        micros = [micro_batch_size]
    elif device == "cuda":
        micros = [d for d in _divisors_descending(batch_size) if d >= least]
    else:
        micros = [min(d for d in _divisors_descending(batch_size) if d >= least)]
    checkpointing = (
        [gradient_checkpointing] if gradient_checkpointing is not None else [False, True]
    )
    smallest: MemoryPlan | None = None
    for ckpt in checkpointing:
        for micro in micros:
            estimate = estimate_step_bytes(
                shape,
                method=method,
                micro_batch_size=micro,
                max_length=max_length,
                checkpointing=ckpt,
                dtype_bytes=dtype_bytes,
                device=device,
            )
            plan = MemoryPlan(micro, bool(ckpt), estimate, free_bytes, device)
            if estimate <= budget:
                return plan
            if smallest is None or estimate < smallest.estimate_bytes:
                smallest = plan
    assert smallest is not None
    where = "GPU memory" if device == "cuda" else "RAM"
    raise MemoryError(
        f"needs about {smallest.estimate_bytes / GIB:.1f} GiB of {where} even with micro-batch "
        f"{smallest.micro_batch_size} and gradient checkpointing "
        f"{'on' if smallest.gradient_checkpointing else 'off'}, and "
        f"{free_bytes / GIB:.1f} GiB is free (a run plans for {FREE_SHARE:.0%} of it); lower "
        f"max_length ({max_length}), use a smaller model, or free memory"
    )


def memory_override_bytes() -> int | None:
    """SINKHOLE_TRAIN_FREE_MEMORY (bytes, or with a G/M suffix) pretends this much is free: for
    tests, and for a machine shared with other jobs."""
    text = os.environ.get("SINKHOLE_TRAIN_FREE_MEMORY", "").strip().upper()
    if not text:
        return None
    scale = {"G": GIB, "M": MIB}.get(text[-1], 1)
    number = text[:-1] if text[-1] in "GM" else text
    return int(float(number) * scale)


def process_memory_mb() -> tuple[float, float]:
    """(resident now, peak resident since the process started) of this process, in MiB: VmRSS
    and VmHWM from /proc on Linux, psutil's rss and ru_maxrss elsewhere. The peak is what the
    kernel's out-of-memory killer and the issue's budget look at."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        import resource
        import sys

        import psutil

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_mb = peak / MIB if sys.platform == "darwin" else peak / 1024  # bytes there, KiB here
        return psutil.Process().memory_info().rss / MIB, peak_mb


# glibc's malloc keeps what a CPU training step frees in fragments it cannot reuse for the next
# step's differently sized tensors: on SmolLM2 (2 x 256 tokens, LoRA) a forward and backward
# peaked 0.5 GB higher on it than on jemalloc, at the same speed. Fixing glibc's mmap threshold
# low returns the memory too but costs a third more CPU in page faults. jemalloc has to be
# loaded before the process starts (LD_PRELOAD); `python -m trainer run` restarts itself on it.
JEMALLOC_SWITCH = "SINKHOLE_TRAIN_JEMALLOC"  # "0": stay on the system allocator
_JEMALLOC_TRIED = "_SINKHOLE_JEMALLOC_TRIED"  # set before the restart: never loop


def allocator_in_use() -> str:
    """ "jemalloc" when this process runs on it, else "system"."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return "jemalloc" if any("jemalloc" in line for line in maps) else "system"
    except OSError:
        return "system"


def jemalloc_library() -> str | None:
    """jemalloc's shared library as LD_PRELOAD takes it (Debian and Ubuntu: the libjemalloc2
    package), or None where the system has none."""
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    return ctypes.util.find_library("jemalloc")


def jemalloc_env(env: dict[str, str]) -> dict[str, str] | None:
    """A copy of env that preloads jemalloc, for a process about to start (or restart) to train;
    None where there is nothing to do: no jemalloc on the system, SINKHOLE_TRAIN_JEMALLOC=0,
    already preloaded, or a restart that already tried it."""
    if env.get(JEMALLOC_SWITCH, "1").strip() == "0" or env.get(_JEMALLOC_TRIED):
        return None
    library = jemalloc_library()
    preload = env.get("LD_PRELOAD", "")
    if library is None or "jemalloc" in preload:
        return None
    return {
        **env,
        "LD_PRELOAD": f"{library} {preload}".strip(),
        _JEMALLOC_TRIED: "1",
    }
