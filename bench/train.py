"""Training benchmark: peak memory, tokens/s and steps/s of a DPO run of SmolLM2-135M-Instruct
through Sinkhole's trainer (trainer.run_job, its defaults) against a plain TRL script at the
same batch and length, in one run; and what Sinkhole's evaluation of held-out pairs costs.

    .venv/bin/python bench/train.py [--steps 10] [--eval-pairs 200] [--json] [--device auto|cpu|cuda]
        [--arms both|sinkhole|precision|head|ahead] [--eval-compare N] [--precision auto|fp32|bf16]
        [--precision-compare N]

Both arms train LoRA r 16, alpha 32 on all linear layers with DPO (beta 0.1, lr 5e-5), 4 pairs
an optimizer step, max length 256, fp32 on a CPU (bf16 on a GPU that has it), on the same rows
in the same order (seed 42). Plain TRL runs as its documentation shows it (one forward pass of
4 pairs, LoRA dropout 0.05; its activation checkpointing off, as Sinkhole ran it before, or on
with --reference-checkpointing). Sinkhole runs with its own defaults: the micro-batch and
checkpointing its memory plan picks (on a CPU one pair a pass, no padding), LoRA dropout 0, long
prompts cut at their start, on jemalloc where the system has it (as `python -m trainer run`
restarts itself; --system-malloc keeps glibc's). Peak memory is the arm's process peak RSS
(ru_maxrss; on a GPU also torch's peak allocated); the table names each arm's malloc. Real preference pairs from
Anthropic's hh-rlhf (../shared/data/formats/hh_rlhf_harmless_sample.jsonl, multi-turn
conversations; a synthetic set where that file is absent). Each arm runs in its own process,
reference first. "train" times trainer.train() only (what TRL itself reports as train_runtime);
tokens are the non-padding tokens through the forward pass (chosen and rejected sequences,
prompt included), counted by transformers' `include_num_input_tokens_seen`. Sinkhole's
end-to-end time adds loading, the held-out evaluation of --eval-pairs pairs (base and trained
log-probs, each pair's prompt run once) and writing the adapter; the evaluation's seconds are
set against 20 of the same run's training steps. --arms sinkhole skips plain TRL (its arm peaks
near 7 GB). --eval-compare N then times, in Sinkhole's process after its run, the evaluation's
scoring of the first N held-out pairs both ways, base and trained: each reply scored whole
(two sequences a pair, as before) and each pair's prompt once, and says how far their numbers
differ. --arms precision runs Sinkhole's arm in float32, then in bf16 (--precision-compare N
scores N held-out pairs with the bf16 arm's adapter both ways: time, log-prob differences,
accuracies, flipped verdicts); --arms head trains with TRL's LM head projecting every position
(its CPU path), then with the reply tokens only (Sinkhole's); --arms ahead runs the reference
model in every step (TRL's way), then scores it once before training (Sinkhole's default: its
seconds are shown apart, and the held-out pairs' share of them is the evaluation's base pass).
Every arm is a first run: no base log-probs are remembered from an earlier arm or run. Prints a
table; --json prints one object; the result is also written to bench/results/train-<time>.json."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Scripts in bench/ may share a name with a library one day: keep bench/ off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
HH = ROOT.parent / "shared" / "data" / "formats" / "hh_rlhf_harmless_sample.jsonl"
RESULTS = Path(__file__).resolve().parent / "results"
SETTINGS = {
    "method": "dpo",
    "max_length": 256,
    "batch_size": 4,
    "learning_rate": 5e-5,
    "beta": 0.1,
    "seed": 42,
}
REFERENCE_LORA = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}


def peak_memory(device: str) -> dict[str, float]:
    """This process's peak resident set (CPU) and, on a GPU, peak allocated memory, in MiB."""
    import resource

    import torch

    peak = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device == "cuda" and torch.cuda.is_available():
        peak["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return peak


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _turns(transcript: str) -> list[dict[str, str]]:
    parts = re.split(r"\n\n(Human|Assistant): ", transcript)
    messages = []
    for speaker, text in zip(parts[1::2], parts[2::2], strict=False):
        messages.append(
            {"role": "user" if speaker == "Human" else "assistant", "content": text.strip()}
        )
    return messages


def make_data(folder: Path, rows: int, eval_rows: int = 8) -> tuple[Path, Path, str]:
    """Train and eval JSONL in TRL's conversational DPO format."""
    pairs: list[dict[str, Any]] = []
    source = "synthetic"
    if HH.is_file():
        source = str(HH.relative_to(ROOT.parent))
        for line in HH.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            chosen, rejected = _turns(record["chosen"]), _turns(record["rejected"])
            if (
                len(chosen) >= 2
                and chosen[:-1] == rejected[:-1]
                and chosen[-1]["role"] == rejected[-1]["role"] == "assistant"
                and chosen[-1]["content"] != rejected[-1]["content"]
            ):
                pairs.append(
                    {"prompt": chosen[:-1], "chosen": [chosen[-1]], "rejected": [rejected[-1]]}
                )
    while len(pairs) < rows + eval_rows:
        i = len(pairs)
        pairs.append(
            {
                "prompt": [
                    {
                        "role": "user",
                        "content": f"Question {i}: explain why the sky is blue, briefly.",
                    }
                ],
                "chosen": [
                    {
                        "role": "assistant",
                        "content": "Sunlight scatters off air molecules; blue light scatters most. "
                        * 3,
                    }
                ],
                "rejected": [{"role": "assistant", "content": "Because it is painted blue. " * 3}],
            }
        )
    train, evaluation = folder / "train.jsonl", folder / "eval.jsonl"
    train.write_text("".join(json.dumps(p) + "\n" for p in pairs[:rows]), encoding="utf-8")
    evaluation.write_text(
        "".join(json.dumps(p) + "\n" for p in pairs[rows : rows + eval_rows]), encoding="utf-8"
    )
    return train, evaluation, source


# -- the two arms (each runs in its own process) --------------------------------------------------


def arm_reference(args: argparse.Namespace) -> dict[str, Any]:
    """Plain TRL, as its documentation shows it: DPOTrainer + DPOConfig + a PEFT LoraConfig."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from trainer.memory import allocator_in_use
    from trainer.models import resolve_base_model

    started = time.perf_counter()
    path = resolve_base_model(args.model)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    bf16 = cuda and torch.cuda.is_bf16_supported()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.bfloat16 if bf16 else torch.float32
    )
    dataset = load_dataset("json", data_files=args.train, split="train")
    lora = REFERENCE_LORA
    config = DPOConfig(
        output_dir=args.workdir,
        per_device_train_batch_size=SETTINGS["batch_size"],
        learning_rate=SETTINGS["learning_rate"],
        beta=SETTINGS["beta"],
        max_length=SETTINGS["max_length"],
        max_steps=args.steps,
        seed=SETTINGS["seed"],
        data_seed=SETTINGS["seed"],
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=not cuda,
        bf16=bf16,
        activation_checkpointing=args.reference_checkpointing,
        include_num_input_tokens_seen="non_padding",
    )
    trainer = DPOTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=LoraConfig(
            r=lora["r"],
            lora_alpha=lora["alpha"],
            lora_dropout=lora["dropout"],
            target_modules=lora["target_modules"],
            task_type="CAUSAL_LM",
        ),
    )
    output = trainer.train()
    seconds = output.metrics["train_runtime"]
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {
        "steps": trainer.state.global_step,
        "train_seconds": seconds,
        "tokens": trainer.state.num_input_tokens_seen,
        "end_to_end_seconds": time.perf_counter() - started,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "device": "cuda" if cuda else "cpu",
        **peak_memory("cuda" if cuda else "cpu"),
        "malloc": allocator_in_use(),
    }


def arm_sinkhole(args: argparse.Namespace) -> dict[str, Any]:
    from trainer import JobSpec, run_job
    from trainer.memory import allocator_in_use

    if args.full_head:  # TRL's head as it is on a CPU: every position projected in training
        import contextlib

        import trainer.run

        trainer.run.compact_lm_head = lambda device: contextlib.nullcontext()
    started = time.perf_counter()
    spec = JobSpec.from_dict(
        {
            **SETTINGS,
            "base_model": args.model,
            "dataset": {"train": [args.train], "eval": [args.eval]},
            "max_steps": args.steps,
            "output_dir": args.workdir,
            "save_steps": 10_000,
            "logging_steps": 1,
            "device": args.device,
            "num_samples": 0,
            "precompute_reference": not args.per_step_reference,
            **({"precision": args.precision} if args.precision != "auto" else {}),
        }
    )
    result = run_job(spec)
    peak = peak_memory(result.device)  # before the comparison below loads a second model
    compare = compare_evaluation(args, result) if args.eval_compare else {}
    if args.precision_compare:
        compare.update(compare_precision(args, result))
    return {
        "steps": result.steps,
        "train_seconds": result.metrics["train_seconds"],
        "tokens": result.metrics["tokens_seen"],
        "end_to_end_seconds": time.perf_counter() - started,
        "first_loss": result.loss_curve[0]["loss"] if result.loss_curve else None,
        "last_loss": result.loss_curve[-1]["loss"] if result.loss_curve else None,
        "device": result.device,
        "eval_preference_accuracy": result.metrics.get("eval_preference_accuracy"),
        "eval_reward_margin": result.metrics.get("eval_reward_margin"),
        "eval_pairs": result.metrics.get("eval_pairs"),
        "eval_seconds": result.metrics.get("eval_seconds"),
        # DPO's reference scored before training (0 with --per-step-reference): all pairs, and
        # the held-out pairs' part (the evaluation's base pass, done ahead)
        "reference_seconds": result.metrics.get("reference_seconds", 0.0),
        "reference_eval_seconds": result.metrics.get("reference_eval_seconds", 0.0),
        "micro_batch_size": result.spec.get("micro_batch_size"),
        "gradient_checkpointing": result.spec.get("gradient_checkpointing"),
        "train_peak_rss_mb": result.metrics.get("train_peak_rss_mb"),
        "precision": result.spec.get("precision"),
        "eval_base_logp_accuracy": result.metrics.get("eval_base_logp_accuracy"),
        **peak,
        **compare,
        "malloc": allocator_in_use(),
    }


def compare_evaluation(args: argparse.Namespace, result: Any) -> dict[str, Any]:
    """Seconds of the evaluation's scoring of the first --eval-compare held-out pairs, base and
    trained, each reply scored whole (`sequence_logps`) and each prompt once (`pair_logps`),
    alternated, and the largest difference between the two ways' log-probs."""
    import torch

    from trainer.inference import load_model
    from trainer.preference import fit_pair, pair_logps, sequence_logps
    from trainer.run import _sequence_ids

    chat = load_model(args.model, adapter_dir=result.adapter_dir, device=result.device)
    model, tokenizer = chat.model, chat.tokenizer
    pad = tokenizer.pad_token_id
    pairs = []
    for line in Path(args.eval).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        prompt, chosen = _sequence_ids(tokenizer, row["prompt"], row["chosen"], 10**9)
        again, rejected = _sequence_ids(tokenizer, row["prompt"], row["rejected"], 10**9)
        if prompt == again:  # the prompt tokenizes the same before either reply
            pairs.append(fit_pair(prompt, chosen, rejected, SETTINGS["max_length"])[:3])
        if len(pairs) == args.eval_compare:
            break
    sequences = [(prompt, reply) for prompt, *two in pairs for reply in two]
    seconds = {"whole": 0.0, "shared": 0.0}
    difference = 0.0
    for adapter in (False, True):
        with torch.inference_mode(), model.disable_adapter() if not adapter else _no_context():
            started = time.perf_counter()
            whole = sequence_logps(model, sequences, pad_id=pad, batch_size=4)
            seconds["whole"] += time.perf_counter() - started
            started = time.perf_counter()
            shared = pair_logps(model, pairs, pad_id=pad, batch_size=4)
            seconds["shared"] += time.perf_counter() - started
        flat = [score for pair in shared for score in pair]
        difference = max(
            [difference] + [abs(a[0] - b[0]) for a, b in zip(flat, whole, strict=True)]
        )
    return {
        "compare_pairs": len(pairs),
        "compare_whole_seconds": seconds["whole"],
        "compare_shared_seconds": seconds["shared"],
        "compare_max_abs_logp_difference": difference,
    }


def compare_precision(args: argparse.Namespace, result: Any) -> dict[str, Any]:
    """The evaluation's scoring (each prompt once) of the first --precision-compare held-out
    pairs with the run's adapter, base and trained, in float32 and under bf16 autocast (as the
    trainer evaluates on a CPU with native bf16), alternated: seconds of each, the largest and
    the median log-prob difference, and the accuracies each way (base log-prob, trained
    log-prob, implicit reward) with the pairs whose implicit-reward verdict differs."""
    import statistics

    import torch

    from trainer.inference import load_model
    from trainer.preference import pair_logps, pair_metrics

    chat = load_model(args.model, adapter_dir=result.adapter_dir, device=result.device)
    model, tokenizer = chat.model, chat.tokenizer
    pairs = _eval_pairs(args, tokenizer, args.precision_compare)
    pad = tokenizer.pad_token_id
    scores: dict[str, dict[str, Any]] = {"fp32": {}, "bf16": {}}
    seconds = {"fp32": 0.0, "bf16": 0.0}
    for adapter in ("base", "trained"):
        for precision in ("fp32", "bf16"):
            autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
            off = model.disable_adapter() if adapter == "base" else _no_context()
            with torch.inference_mode(), autocast, off:
                started = time.perf_counter()
                scores[precision][adapter] = pair_logps(model, pairs, pad_id=pad, batch_size=4)
                seconds[precision] += time.perf_counter() - started
    differences = [
        abs(a[0] - b[0])
        for adapter in ("base", "trained")
        for pa, pb in zip(scores["fp32"][adapter], scores["bf16"][adapter], strict=True)
        for a, b in zip(pa, pb, strict=True)
    ]
    metrics = {
        precision: pair_metrics(base=s["base"], trained=s["trained"], beta=SETTINGS["beta"])
        for precision, s in scores.items()
    }

    def verdicts(s: dict[str, Any]) -> list[bool]:
        return [
            (t[0][0] - b[0][0]) - (t[1][0] - b[1][0]) > 0
            for t, b in zip(s["trained"], s["base"], strict=True)
        ]

    flipped = sum(
        a != b for a, b in zip(verdicts(scores["fp32"]), verdicts(scores["bf16"]), strict=True)
    )
    out: dict[str, Any] = {
        "precision_pairs": len(pairs),
        "precision_fp32_seconds": seconds["fp32"],
        "precision_bf16_seconds": seconds["bf16"],
        "precision_max_abs_logp_difference": max(differences, default=0.0),
        "precision_median_abs_logp_difference": statistics.median(differences or [0.0]),
        "precision_reward_verdicts_flipped": flipped,
    }
    for precision, values in metrics.items():
        for key in ("base_logp_accuracy", "logp_accuracy", "preference_accuracy"):
            out[f"precision_{precision}_{key}"] = values.get(f"eval_{key}")
    return out


def _eval_pairs(args: argparse.Namespace, tokenizer: Any, count: int) -> list[Any]:
    """The first count held-out pairs as token ids, cut to max length as the trainer does."""
    from trainer.preference import fit_pair
    from trainer.run import _sequence_ids

    pairs = []
    for line in Path(args.eval).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        prompt, chosen = _sequence_ids(tokenizer, row["prompt"], row["chosen"], 10**9)
        again, rejected = _sequence_ids(tokenizer, row["prompt"], row["rejected"], 10**9)
        if prompt == again:  # the prompt tokenizes the same before either reply
            pairs.append(fit_pair(prompt, chosen, rejected, SETTINGS["max_length"])[:3])
        if len(pairs) == count:
            break
    return pairs


def _no_context() -> Any:
    import contextlib

    return contextlib.nullcontext()


def run_arm(
    name: str,
    args: argparse.Namespace,
    train: Path,
    evaluation: Path,
    workdir: Path,
    precision: str | None = None,
    full_head: bool = False,
    per_step_reference: bool = False,
) -> dict[str, Any]:
    precision = precision or args.precision
    # --precision-compare runs in the bf16 arm alone (its adapter, scored both ways).
    compare = 0 if args.arms == "precision" and precision == "fp32" else args.precision_compare
    variant = f"{', full head' if full_head else ''}{', per-step reference' if per_step_reference else ''}"
    say(f"{name} ({precision}{variant}): {args.steps} DPO steps")
    command = [
        sys.executable, __file__, "--arm", name, "--steps", str(args.steps), "--model", args.model,
        "--device", args.device, "--train", str(train), "--eval", str(evaluation),
        "--workdir", str(workdir / f"{name}-{precision}{'-full' if full_head else ''}{'-per-step' if per_step_reference else ''}"),
        "--eval-compare", str(args.eval_compare),
        "--precision", precision, "--precision-compare", str(compare),
    ] + (["--system-malloc"] if args.system_malloc else []) + (["--reference-checkpointing"] if args.reference_checkpointing else []) + (["--full-head"] if full_head else []) + (["--per-step-reference"] if per_step_reference else [])  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    # Every arm is a first run on these pairs: nothing remembered from an earlier arm or bench.
    env["SINKHOLE_TRAIN_LOGPS_CACHE"] = "off"
    if args.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    if name == "sinkhole" and not args.system_malloc:
        from trainer.memory import jemalloc_env

        env = jemalloc_env(env) or env  # as `python -m trainer run` restarts itself
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"the {name} arm failed (exit {done.returncode})")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["steps_per_second"] = result["steps"] / result["train_seconds"]
    result["tokens_per_second"] = result["tokens"] / result["train_seconds"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument(
        "--eval-pairs", type=int, default=200, help="held-out pairs Sinkhole's arm evaluates"
    )
    parser.add_argument(
        "--reference-checkpointing",
        action="store_true",
        help="plain TRL with activation checkpointing on (TRL's own default)",
    )
    parser.add_argument(
        "--arms",
        default="both",
        choices=["both", "sinkhole", "precision", "head", "ahead"],
        help="sinkhole: Sinkhole's arm alone (its memory and evaluation cost, no ratios); "
        "precision: Sinkhole's arm in float32, then in bf16 (training and evaluation), no plain TRL;"
        " head: Sinkhole's arm training with TRL's LM head projecting every position (as TRL does"
        " on a CPU), then with the replies only (Sinkhole's default); ahead: Sinkhole's arm with"
        " TRL's reference forward in every step, then with the reference scored once before"
        " training (Sinkhole's default)",
    )
    parser.add_argument("--full-head", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--per-step-reference", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16"],
        help="Sinkhole's compute precision (auto: bf16 where the device has it natively)",
    )
    parser.add_argument(
        "--precision-compare",
        type=int,
        default=0,
        help="score this many held-out pairs with the trained adapter in float32 and in bf16",
    )
    parser.add_argument(
        "--eval-compare",
        type=int,
        default=0,
        help="time the evaluation's scoring of this many pairs both ways (whole, shared prompt)",
    )
    parser.add_argument(
        "--system-malloc",
        action="store_true",
        help="Sinkhole's arm on the system's malloc too (by default it runs on jemalloc where the"
        " system has it, as `python -m trainer run` does; plain TRL on the system's)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads in both arms (default: torch's, one per core)",
    )
    parser.add_argument(
        "--sinkhole-first", action="store_true", help="run Sinkhole's arm before the reference"
    )
    parser.add_argument("--arm", choices=["reference", "sinkhole"], help=argparse.SUPPRESS)
    parser.add_argument("--train", help=argparse.SUPPRESS)
    parser.add_argument("--eval", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        sys.path.insert(0, str(ROOT))
        import logging

        logging.basicConfig(level=logging.WARNING)
        result = (arm_reference if args.arm == "reference" else arm_sinkhole)(args)
        print(json.dumps(result))
        return 0

    sys.path.insert(0, str(ROOT))
    from trainer.models import resolve_base_model

    say(f"resolving {args.model} (converted once, then cached)")
    resolve_base_model(args.model)
    with tempfile.TemporaryDirectory(prefix="sinkhole-bench-train-") as tmp:
        folder = Path(tmp)
        train, evaluation, source = make_data(
            folder, rows=args.steps * SETTINGS["batch_size"], eval_rows=args.eval_pairs
        )
        fp32 = None  # Sinkhole's arm in float32, with --arms precision
        if args.arms == "sinkhole":
            reference = None
            sinkhole = run_arm("sinkhole", args, train, evaluation, folder)
        elif args.arms == "precision":
            reference = None
            fp32 = run_arm("sinkhole", args, train, evaluation, folder, precision="fp32")
            sinkhole = run_arm("sinkhole", args, train, evaluation, folder, precision="bf16")
        elif args.arms == "head":  # "fp32" holds the full-head arm: the table is the same
            reference = None
            fp32 = run_arm("sinkhole", args, train, evaluation, folder, full_head=True)
            sinkhole = run_arm("sinkhole", args, train, evaluation, folder)
        elif args.arms == "ahead":  # "fp32" holds the per-step-reference arm
            reference = None
            fp32 = run_arm("sinkhole", args, train, evaluation, folder, per_step_reference=True)
            sinkhole = run_arm("sinkhole", args, train, evaluation, folder)
        elif args.sinkhole_first:  # to see whether the order (warm page cache, load) matters
            sinkhole = run_arm("sinkhole", args, train, evaluation, folder)
            reference = run_arm("reference", args, train, evaluation, folder)
        else:
            reference = run_arm("reference", args, train, evaluation, folder)
            sinkhole = run_arm("sinkhole", args, train, evaluation, folder)
    report = {
        "benchmark": "train",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "device": sinkhole["device"],
        },
        "settings": {
            **SETTINGS,
            "steps": args.steps,
            "model": args.model,
            "data": source,
            "threads": args.threads,
            "order": "sinkhole first" if args.sinkhole_first else "reference first",
            "reference_lora": REFERENCE_LORA,
            "reference_checkpointing": args.reference_checkpointing,
            "system_malloc": args.system_malloc,
        },
        "load_average_after": os.getloadavg(),
        "reference": reference,
        "sinkhole_fp32": fp32,
        "sinkhole": sinkhole,
        # What 20 of Sinkhole's training steps took, against its evaluation of eval_pairs pairs.
        "twenty_steps_seconds": 20 * sinkhole["train_seconds"] / max(1, sinkhole["steps"]),
    }
    report["ratio_eval_to_twenty_steps"] = (sinkhole["eval_seconds"] or 0.0) / report[
        "twenty_steps_seconds"
    ]
    # The same with the base's pass over the held-out pairs counted in, wherever it ran.
    report["ratio_eval_with_base_to_twenty_steps"] = (
        (sinkhole["eval_seconds"] or 0.0) + (sinkhole.get("reference_eval_seconds") or 0.0)
    ) / report["twenty_steps_seconds"]
    if reference is not None:
        for key in ("tokens_per_second", "steps_per_second", "peak_rss_mb"):
            name = "ratio_peak_rss" if key == "peak_rss_mb" else f"ratio_{key}"
            report[name] = sinkhole[key] / reference[key]
    if fp32 is not None:  # two of Sinkhole's arms: "sinkhole_fp32" is the first one
        report["arms_compared"] = {
            "precision": ["float32", "bf16"],
            "head": ["full head", "replies only"],
            "ahead": ["per-step reference", "reference ahead"],
        }[args.arms]
        fp32_twenty = 20 * fp32["train_seconds"] / max(1, fp32["steps"])
        report["first_ratio_eval_to_twenty_steps"] = (fp32["eval_seconds"] or 0.0) / fp32_twenty
        for key in ("tokens_per_second", "eval_seconds", "peak_rss_mb", "end_to_end_seconds"):
            report[f"second_to_first_{key}"] = sinkhole[key] / fp32[key]
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"train-{stamp}.json").write_text(
        json.dumps(report, indent=2) + "\n", encoding="utf-8"
    )
    if args.json:
        print(json.dumps(report))
        return 0
    if fp32 is not None:
        print_precision(args, report, fp32, sinkhole)
        return 0
    print(
        f"DPO, {args.model}, {args.steps} steps, batch 4, max length 256, LoRA r16, "
        f"{sinkhole['device']}; Sinkhole: micro-batch {sinkhole['micro_batch_size']}, "
        f"checkpointing {sinkhole['gradient_checkpointing']}, malloc {sinkhole['malloc']}; "
        f"plain TRL: checkpointing {args.reference_checkpointing}"
        + (f", malloc {reference['malloc']}" if reference else "")
    )
    print(f"{'':28}{'plain TRL':>13}{'Sinkhole':>13}{'ratio':>8}")
    missing = {"first_loss": float("nan"), "last_loss": float("nan")}
    rows = [
        ("peak RSS MiB", "peak_rss_mb", "{:.0f}"),
        *([("peak GPU MiB", "peak_gpu_mb", "{:.0f}")] if "peak_gpu_mb" in sinkhole else []),
        ("train steps/s", "steps_per_second", "{:.3f}"),
        ("train tokens/s", "tokens_per_second", "{:.0f}"),
        ("train seconds", "train_seconds", "{:.1f}"),
        ("end-to-end seconds", "end_to_end_seconds", "{:.1f}"),
        ("loss first -> last", None, None),
    ]
    for label, key, fmt in rows:
        if key is None:
            values = [
                f"{r['first_loss']:.3f}>{r['last_loss']:.3f}"
                for r in (reference or missing, sinkhole)
            ]
            print(f"{label:28}{values[0]:>13}{values[1]:>13}")
            continue
        plain = reference[key] if reference else float("nan")
        ratio = sinkhole[key] / plain if plain else float("nan")
        print(f"{label:28}{fmt.format(plain):>13}{fmt.format(sinkhole[key]):>13}{ratio:>8.2f}")
    print(
        f"Sinkhole's evaluation of {sinkhole['eval_pairs']:.0f} held-out pairs: "
        f"{sinkhole['eval_seconds']:.1f} s; 20 of its training steps: "
        f"{report['twenty_steps_seconds']:.1f} s (ratio {report['ratio_eval_to_twenty_steps']:.2f})"
    )
    if sinkhole.get("reference_seconds"):
        print(
            f"Its reference, scored before training: {sinkhole['reference_seconds']:.1f} s, of "
            f"which the held-out pairs' base pass {sinkhole['reference_eval_seconds']:.1f} s "
            f"(evaluation with it: ratio {report['ratio_eval_with_base_to_twenty_steps']:.2f})"
        )
    if sinkhole.get("compare_pairs"):
        whole, shared = sinkhole["compare_whole_seconds"], sinkhole["compare_shared_seconds"]
        print(
            f"Scoring {sinkhole['compare_pairs']} pairs, base and trained: each reply whole "
            f"{whole:.1f} s, each prompt once {shared:.1f} s (ratio {shared / whole:.2f}); "
            f"largest log-prob difference {sinkhole['compare_max_abs_logp_difference']:.2e}"
        )
    return 0


def print_precision(
    args: argparse.Namespace, report: dict[str, Any], fp32: dict[str, Any], bf16: dict[str, Any]
) -> None:
    """The table of --arms precision (Sinkhole's arm in float32 and in bf16), --arms head
    (training with the full head and with the replies only) or --arms ahead (the reference
    run in every step and scored before training), side by side."""
    first, second = report["arms_compared"]
    print(
        f"DPO, {args.model}, {args.steps} steps, batch 4, max length 256, LoRA r16, "
        f"{bf16['device']}, Sinkhole's defaults, malloc {bf16['malloc']}; "
        f"{bf16['eval_pairs']:.0f} held-out pairs"
    )
    print(f"{'':34}{first:>13}{second:>13}{'ratio':>8}")
    rows = [
        ("peak RSS MiB", "peak_rss_mb", "{:.0f}"),
        ("train tokens/s", "tokens_per_second", "{:.1f}"),
        ("train seconds", "train_seconds", "{:.1f}"),
        ("reference scored before training, s", "reference_seconds", "{:.1f}"),
        ("evaluation seconds", "eval_seconds", "{:.1f}"),
        ("end-to-end seconds", "end_to_end_seconds", "{:.1f}"),
        ("implicit-reward accuracy", "eval_preference_accuracy", "{:.3f}"),
        ("base log-prob accuracy", "eval_base_logp_accuracy", "{:.3f}"),
    ]
    for label, key, fmt in rows:
        a, b = fp32.get(key) or 0.0, bf16.get(key) or 0.0
        ratio = b / a if a else float("nan")
        print(f"{label:34}{fmt.format(a):>13}{fmt.format(b):>13}{ratio:>8.2f}")
    losses = [f"{r['first_loss']:.3f}>{r['last_loss']:.3f}" for r in (fp32, bf16)]
    print(f"{'loss first -> last':34}{losses[0]:>13}{losses[1]:>13}")
    print(
        f"evaluation / 20 training steps: {first} {report['first_ratio_eval_to_twenty_steps']:.2f},"
        f" {second} {report['ratio_eval_to_twenty_steps']:.2f} (target < 1)"
        + (
            f"; {second} with its base pass done before training: "
            f"{report['ratio_eval_with_base_to_twenty_steps']:.2f}"
            if bf16.get("reference_eval_seconds")
            else ""
        )
    )
    if bf16.get("precision_pairs"):
        print(
            f"Same adapter, {bf16['precision_pairs']} pairs, base and trained: float32 "
            f"{bf16['precision_fp32_seconds']:.1f} s, bf16 {bf16['precision_bf16_seconds']:.1f} s; "
            f"log-prob difference max {bf16['precision_max_abs_logp_difference']:.3f}, median "
            f"{bf16['precision_median_abs_logp_difference']:.3f} nats; implicit-reward accuracy "
            f"{bf16['precision_fp32_preference_accuracy']} vs "
            f"{bf16['precision_bf16_preference_accuracy']} "
            f"({bf16['precision_reward_verdicts_flipped']} verdicts differ); base log-prob "
            f"accuracy {bf16['precision_fp32_base_logp_accuracy']} vs "
            f"{bf16['precision_bf16_base_logp_accuracy']}"
        )


if __name__ == "__main__":
    sys.exit(main())
