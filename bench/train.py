"""Training benchmark: peak memory, tokens/s and steps/s of a DPO run of SmolLM2-135M-Instruct
through Sinkhole's trainer (trainer.run_job, its defaults) against a plain TRL script at the
same batch and length, in one run; and what Sinkhole's evaluation of held-out pairs costs.

    .venv/bin/python bench/train.py [--steps 10] [--eval-pairs 200] [--json] [--device auto|cpu|cuda]

Both arms train LoRA r 16, alpha 32 on all linear layers with DPO (beta 0.1, lr 5e-5), 4 pairs
an optimizer step, max length 256, fp32 on a CPU (bf16 on a GPU that has it), on the same rows
in the same order (seed 42). Plain TRL runs as its documentation shows it (one forward pass of
4 pairs, LoRA dropout 0.05; its activation checkpointing off, as Sinkhole ran it before, or on
with --reference-checkpointing). Sinkhole runs with its own defaults: the micro-batch and
checkpointing its memory plan picks (on a CPU one pair a pass, no padding), LoRA dropout 0, long
prompts cut at their start. Peak memory is the arm's process peak RSS (ru_maxrss; on a GPU also
torch's peak allocated). Real preference pairs from
Anthropic's hh-rlhf (../shared/data/formats/hh_rlhf_harmless_sample.jsonl, multi-turn
conversations; a synthetic set where that file is absent). Each arm runs in its own process,
reference first. "train" times trainer.train() only (what TRL itself reports as train_runtime);
tokens are the non-padding tokens through the forward pass (chosen and rejected sequences,
prompt included), counted by transformers' `include_num_input_tokens_seen`. Sinkhole's
end-to-end time adds loading, the held-out evaluation (implicit reward on 8 pairs), two sample
generations and writing the adapter. Prints a table; --json prints one object; the result is
also written to bench/results/train-<time>.json."""

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
    }


def arm_sinkhole(args: argparse.Namespace) -> dict[str, Any]:
    from trainer import JobSpec, run_job

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
        }
    )
    result = run_job(spec)
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
        "micro_batch_size": result.spec.get("micro_batch_size"),
        "gradient_checkpointing": result.spec.get("gradient_checkpointing"),
        **peak_memory(result.device),
    }


def run_arm(
    name: str, args: argparse.Namespace, train: Path, evaluation: Path, workdir: Path
) -> dict[str, Any]:
    say(f"{name}: {args.steps} DPO steps")
    command = [
        sys.executable, __file__, "--arm", name, "--steps", str(args.steps), "--model", args.model,
        "--device", args.device, "--train", str(train), "--eval", str(evaluation), "--workdir", str(workdir / name),
    ] + (["--reference-checkpointing"] if args.reference_checkpointing else [])  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    if args.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
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
        if args.sinkhole_first:  # to see whether the order (warm page cache, load) matters
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
        },
        "load_average_after": os.getloadavg(),
        "reference": reference,
        "sinkhole": sinkhole,
        "ratio_tokens_per_second": sinkhole["tokens_per_second"] / reference["tokens_per_second"],
        "ratio_steps_per_second": sinkhole["steps_per_second"] / reference["steps_per_second"],
        "ratio_peak_rss": sinkhole["peak_rss_mb"] / reference["peak_rss_mb"],
        # What 20 of Sinkhole's training steps took, against its evaluation of eval_pairs pairs.
        "twenty_steps_seconds": 20 * sinkhole["train_seconds"] / max(1, sinkhole["steps"]),
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"train-{stamp}.json").write_text(
        json.dumps(report, indent=2) + "\n", encoding="utf-8"
    )
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"DPO, {args.model}, {args.steps} steps, batch 4, max length 256, LoRA r16, "
        f"{sinkhole['device']}; Sinkhole: micro-batch {sinkhole['micro_batch_size']}, "
        f"checkpointing {sinkhole['gradient_checkpointing']}; plain TRL: checkpointing "
        f"{args.reference_checkpointing}"
    )
    print(f"{'':28}{'plain TRL':>13}{'Sinkhole':>13}{'ratio':>8}")
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
            values = [f"{r['first_loss']:.3f}>{r['last_loss']:.3f}" for r in (reference, sinkhole)]
            print(f"{label:28}{values[0]:>13}{values[1]:>13}")
            continue
        ratio = sinkhole[key] / reference[key] if reference[key] else float("nan")
        print(
            f"{label:28}{fmt.format(reference[key]):>13}{fmt.format(sinkhole[key]):>13}{ratio:>8.2f}"
        )
    print(
        f"Sinkhole's evaluation of {sinkhole['eval_pairs']:.0f} held-out pairs: "
        f"{sinkhole['eval_seconds']:.1f} s; 20 of its training steps: "
        f"{report['twenty_steps_seconds']:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
