"""Judges benchmark: a pairwise reward model on SmolLM2-135M-Instruct from the HH-RLHF harmless
train pool, its held-out pairwise accuracy and its audit against the people's labels.

    .venv/bin/python bench/judges.py rm [--max-length N] [--epochs N] [--top-layers N]
                                        [--train-minutes 30] [--json]
    .venv/bin/python bench/judges.py audit RUN_DIR [--json]
    .venv/bin/python bench/judges.py gate RUN_DIR [--prompts 50] [--max-tokens 96] [--json]

`rm` trains through Sinkhole's trainer (trainer.run_job, method "rm": TRL's RewardTrainer, a
LoRA plus a score head) on the 1,712 pairs of ../shared/data/formats/hh_rlhf_harmless_train_pool.jsonl
and evaluates on the 300 pairs of hh_rlhf_harmless_sample.jsonl (none shared). Both files go
through Sinkhole's own HH-RLHF reader (the shared turns become chat messages, the two last replies
the chosen and rejected completions). The reference is chance (50 %) and the issue's line
(62 %). Without flags the spec is what `manage.py train --method rm` runs: the trainer's rm
defaults (trainer/spec.py METHOD_DEFAULTS: a LoRA on the top 6 transformer blocks plus the
score head, 96 tokens, 3 epochs of 8 pairs, learning rate 3e-4). Adapting the top blocks only
stops backpropagation at the lowest adapted block, which is what makes three epochs fit in
30 minutes on 2 CPU cores; each flag overrides one default. The run writes its artefacts under
bench/results/judges-rm-<time>/ and the result to bench/results/judges-rm-<time>.json.

`audit` loads the trained reward model as a judge and audits it on the same 300 held-out pairs
with `apps.judges.audit` (agreement, kappa, position flips, length bias, the coverage-precision
curve): the issue's line is a certified precision of 70 % at 30 % coverage.

`gate` times `manage.py gate` end to end: a candidate LoRA (small random weights) and the base
model answer the first 50 held-out prompts through the built-in serving engine (greedy, up to
--max-tokens tokens), the reward model judges each pair, the gate records its verdict. The
issue's line is 10 minutes. Both run on a scratch SQLite database."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
FORMATS = ROOT.parent / "shared" / "data" / "formats"
POOL = FORMATS / "hh_rlhf_harmless_train_pool.jsonl"
HELD_OUT = FORMATS / "hh_rlhf_harmless_sample.jsonl"
RESULTS = Path(__file__).resolve().parent / "results"


def hh_pairs(path: Path) -> list[dict[str, Any]]:
    """DPO rows from an HH-RLHF file through the feedback importer's reader (pairs it rejects,
    e.g. transcripts that differ before the last reply, are left out and counted)."""
    from apps.feedback.importers.hh_rlhf.reader import read

    rows = []
    with open(path, "rb") as handle:
        for record in read(io.BufferedReader(handle)):
            if record.event is None:
                continue
            event = record.event
            rows.append(
                {
                    "prompt": event["messages"],
                    "chosen": [{"role": "assistant", "content": event["responses"][0]["content"]}],
                    "rejected": [
                        {"role": "assistant", "content": event["responses"][1]["content"]}
                    ],
                }
            )
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def bench_rm(args: argparse.Namespace) -> dict[str, Any]:
    from trainer import JobSpec, run_job

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out = RESULTS / f"judges-rm-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    train, held_out = hh_pairs(POOL), hh_pairs(HELD_OUT)
    overrides = {
        key: value
        for key, value in {
            "learning_rate": args.learning_rate,
            "epochs": args.epochs,
            "max_steps": args.max_steps,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "warmup_ratio": args.warmup_ratio,
        }.items()
        if value is not None
    }
    lora = {} if args.top_layers is None else {"top_layers": args.top_layers}
    spec = JobSpec.from_dict(
        {
            "method": "rm",
            "dataset": {
                "train": [write_jsonl(out / "train.jsonl", train)],
                "eval": [write_jsonl(out / "test.jsonl", held_out)],
            },
            "lora": lora,
            **overrides,
            "save_steps": 50,
            "logging_steps": 5,
            "output_dir": str(out / "run"),
        }
    )
    torch_threads(args.threads)
    started = time.monotonic()
    clock: dict[str, float] = {}

    def on_progress(progress: Any) -> None:
        if progress.phase == "training" and "train" not in clock:
            clock["train"] = time.monotonic()
        print(progress.log, flush=True)

    def over_budget() -> bool:
        """Stop training once the budget is spent (the trainer saves a checkpoint there)."""
        return "train" in clock and time.monotonic() - clock["train"] > args.train_minutes * 60

    result = run_job(spec, on_progress=on_progress, should_stop=over_budget)
    stopped_at = None
    if result.cancelled:
        # The budget ran out: finish the run at the step it reached (a rerun with max_steps at
        # that step resumes from its checkpoint, trains nothing more, evaluates and saves).
        stopped_at = result.steps
        spec.max_steps = result.steps
        result = run_job(spec, on_progress=lambda p: print(p.log, flush=True))
    seconds = time.monotonic() - started
    report = {
        "bench": "judges-rm",
        "train_pairs": len(train),
        "held_out_pairs": len(held_out),
        "base_model": spec.base_model,
        "settings": {k: v for k, v in spec.to_dict().items() if k != "dataset"},
        "metrics": result.metrics,
        "steps": result.steps,
        "stopped_by_budget_at_step": stopped_at,
        "train_minutes_budget": args.train_minutes,
        "train_seconds": result.metrics.get("train_seconds"),
        "end_to_end_seconds": round(seconds, 1),
        "adapter_dir": str(result.adapter_dir),
        "targets": {"pairwise_accuracy": 0.62, "train_minutes": 30},
    }
    (RESULTS / f"judges-rm-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def scratch_django() -> None:
    """Django on a scratch SQLite database (whatever servers the environment names)."""
    import tempfile

    os.environ.setdefault("SINKHOLE_DATA_DIR", tempfile.mkdtemp(prefix="bench-judges-"))
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def register_reward_judge(run_dir: Path) -> Any:
    """The reward model a `rm` bench run trained, as a checkpoint of kind reward and a judge."""
    from apps.judges.services import judge_register
    from apps.registry.models import BaseModel, Checkpoint
    from trainer.models import SMOLLM2_ID

    base, _ = BaseModel.objects.get_or_create(
        name="smollm2-135m", defaults={"model_id": SMOLLM2_ID}
    )
    adapter = run_dir / "run" / "adapter"
    checkpoint, _ = Checkpoint.objects.get_or_create(
        name="bench-rm",
        defaults={"kind": "reward", "base_model": base, "method": "rm", "local_path": str(adapter)},
    )
    return judge_register(name="bench-rm", kind="reward_model", checkpoint=checkpoint)


def bench_audit(args: argparse.Namespace) -> dict[str, Any]:
    """The reward model audited on the 300 held-out HH-RLHF pairs (audit_judge --json)."""
    scratch_django()
    from django.core.management import call_command

    judge = register_reward_judge(Path(args.run_dir))
    out = io.StringIO()
    started = time.monotonic()
    call_command(
        "audit_judge",
        "--judge",
        judge.label,
        "--format",
        "hh-rlhf",
        str(HELD_OUT),
        "--json",
        stdout=out,
    )
    results = json.loads(out.getvalue())
    report = {
        "bench": "judges-audit",
        "seconds": round(time.monotonic() - started, 1),
        "pairs": results["pairs"],
        "agreement": results["agreement"],
        "agreement_interval": results["agreement_interval"],
        "kappa": results["kappa"],
        "position_flip_rate": results["position_flip_rate"],
        "length_bias": results["length_bias"],
        "precision_at_30": results["precision_at_30"],
        "curve": results["curve"],
        "targets": {"precision_at_30_coverage": 0.70},
    }
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"judges-audit-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def candidate_adapter(folder: Path, seed: int = 1) -> Path:
    """A LoRA on SmolLM2 with small random weights: a candidate that answers differently from
    the base (what it is worth does not change how long a gate takes)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from trainer.models import SMOLLM2_ID, resolve_base_model

    if (folder / "adapter_config.json").is_file():
        return folder
    torch.manual_seed(seed)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(resolve_base_model(SMOLLM2_ID)),
        LoraConfig(r=8, target_modules=["q_proj", "v_proj"]),
    )
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "lora_B" in name:
                weight.normal_(0, 0.02)
    model.save_pretrained(folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = SMOLLM2_ID
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def held_out_version(rows: list[dict[str, Any]]) -> Any:
    """A succeeded DPO dataset version whose test split is ROWS."""
    from django.conf import settings
    from django.utils import timezone

    from apps.datasets.models import DatasetVersion, Recipe

    recipe = Recipe.objects.create(name="bench-hh-held-out", kind="dpo")
    version = DatasetVersion.objects.create(
        recipe=recipe,
        kind="dpo",
        status="succeeded",
        content_hash="0" * 64,
        finished_at=timezone.now(),
    )
    rel = Path("datasets") / f"v{version.pk}"
    folder = Path(settings.ARTIFACT_ROOT) / rel
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "test.jsonl", rows)
    version.files = {"test": {"jsonl": str(rel / "test.jsonl")}}
    version.rows = {"test": len(rows)}
    version.save()
    return version


def bench_gate(args: argparse.Namespace) -> dict[str, Any]:
    """A gate of N held-out HH-RLHF prompts, a candidate LoRA against the base model, judged by
    the reward model: `manage.py gate` end to end (answers, judging, recording)."""
    scratch_django()
    from django.conf import settings
    from django.core.management import call_command

    from apps.registry.models import Alias, BaseModel, Checkpoint
    from trainer.models import SMOLLM2_ID

    settings.JUDGES_GATE_MAX_TOKENS = args.max_tokens
    judge = register_reward_judge(Path(args.run_dir))
    base_model = BaseModel.objects.get(model_id=SMOLLM2_ID)
    base = Checkpoint.objects.create(
        name="base-smollm2", kind="base", base_model=base_model, status="published"
    )
    Alias.objects.create(name="production", checkpoint=base)
    adapter = candidate_adapter(RESULTS / "judges-gate-candidate")
    Checkpoint.objects.create(
        name="candidate", kind="adapter", base_model=base_model, local_path=str(adapter)
    )
    version = held_out_version(hh_pairs(HELD_OUT))
    out = io.StringIO()
    started = time.monotonic()
    try:
        call_command(
            "gate",
            "candidate",
            "--against",
            "production",
            "--prompts",
            str(version.pk),
            "--judge",
            judge.label,
            "--limit",
            str(args.prompts),
            "--json",
            stdout=out,
        )
    except SystemExit:  # exit status 3: the gate failed, which is an outcome, not an error
        pass
    seconds = time.monotonic() - started
    results = json.loads(out.getvalue())
    report = {
        "bench": "judges-gate",
        "end_to_end_seconds": round(seconds, 1),
        "prompts": results["prompts"],
        "max_tokens": args.max_tokens,
        "generate_seconds": results.get("generate_seconds"),
        "judge_seconds": results.get("judge_seconds"),
        "win_rate": results["win_rate"],
        "interval": results["interval"],
        "status": results["status"],
        "targets": {"end_to_end_minutes": 10},
    }
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"judges-gate-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def torch_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def print_report(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        print(f"{key:>22}: {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    rm = sub.add_parser("rm", help="train and evaluate the HH-RLHF reward model")
    rm.add_argument("--max-length", type=int, default=None)
    rm.add_argument("--epochs", type=float, default=None)
    rm.add_argument("--max-steps", type=int, default=None)
    rm.add_argument("--batch-size", type=int, default=None)
    rm.add_argument("--learning-rate", type=float, default=None)
    rm.add_argument("--warmup-ratio", type=float, default=None)
    rm.add_argument("--top-layers", type=int, default=None)
    rm.add_argument("--threads", type=int, default=None)
    rm.add_argument("--train-minutes", type=float, default=30.0)
    rm.add_argument("--json", action="store_true")
    audit = sub.add_parser("audit", help="audit a trained reward model on held-out pairs")
    audit.add_argument("run_dir", help="bench/results/judges-rm-<time>")
    audit.add_argument("--json", action="store_true")
    gate = sub.add_parser("gate", help="time a gate judged by a trained reward model")
    gate.add_argument("run_dir", help="bench/results/judges-rm-<time>")
    gate.add_argument("--prompts", type=int, default=50)
    gate.add_argument("--max-tokens", type=int, default=96)
    gate.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if args.bench == "audit":
        print_report(bench_audit(args), args.json)
        return
    if args.bench == "gate":
        print_report(bench_gate(args), args.json)
        return
    import django

    django.setup()
    print_report(bench_rm(args), args.json)


if __name__ == "__main__":
    main()
