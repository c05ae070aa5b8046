"""Run one job spec with TRL + PEFT: train a LoRA adapter, evaluate it, and write the artefacts.

    result = run_job(spec, on_progress=print, should_stop=lambda: False)

Layout of `spec.output_dir`:

    spec.json         the spec as run (a rerun with a different method/model/data is refused)
    checkpoints/      TRL checkpoints every save_steps (adapter + optimizer + trainer state);
                      a rerun resumes from the newest one
    adapter/          the final PEFT adapter + tokenizer + README.md (model card with lineage);
                      adapter_config.json names the base model by its id, not the local cache path
    metrics.json      metrics, sample generations and the loss curve

Heavy libraries (torch, transformers, trl, peft, datasets) are imported inside the functions, so
importing this module costs nothing in a web process."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import re
import shutil
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainer.memory import process_memory_mb
from trainer.models import sha256_file
from trainer.spec import JobSpec, SpecError, held_out_count, read_rows

__all__ = [
    "Progress",
    "TrainResult",
    "evaluate_adapter",
    "latest_checkpoint",
    "model_card",
    "run_job",
    "sha256_file",
]

logger = logging.getLogger("trainer")

CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
# Changing one of these makes old checkpoints meaningless for the new run.
_RESUME_KEYS = ("method", "base_model", "dataset", "lora", "seed", "eval_split", "max_length")


@dataclass
class Progress:
    """One report from a running job, given to `on_progress`."""

    phase: str  # loading | reference | training | saving | evaluating | done | cancelled
    step: int = 0
    total_steps: int = 0
    epoch: float = 0.0
    loss: float | None = None
    learning_rate: float | None = None
    eval: dict[str, float] = field(default_factory=dict)
    tokens_per_second: float | None = None
    elapsed_seconds: float = 0.0
    eta_seconds: float | None = None  # of the current phase (training or evaluating)
    eval_done: int = 0  # reference, evaluating: sequences scored so far, of eval_total
    eval_total: int = 0
    rss_mb: float | None = None  # this process's resident memory when reported, MiB
    peak_rss_mb: float | None = None  # and its peak so far
    message: str = ""
    log: str = ""  # one human-readable line, for the run's log tail

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """What a finished (or cancelled) job produced."""

    adapter_dir: Path  # output_dir/adapter; absent when the run was cancelled
    output_dir: Path
    metrics: dict[str, float]
    loss_curve: list[dict[str, float]]
    steps: int
    total_steps: int
    resumed_from_step: int | None
    cancelled: bool
    checkpoint_dir: Path | None  # the newest checkpoint (what a rerun resumes from)
    samples: list[dict[str, str]] = field(default_factory=list)
    device: str = "cpu"
    seconds: float = 0.0
    spec: dict[str, Any] = field(default_factory=dict)  # as run: every default filled in

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("adapter_dir", "output_dir", "checkpoint_dir"):
            data[key] = str(data[key]) if data[key] is not None else None
        return data


class _Cancelled(Exception):
    """should_stop() said yes outside the training loop."""


ProgressFn = Callable[[Progress], None]
StopFn = Callable[[], bool]


def run_job(
    spec: JobSpec,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    *,
    lineage: dict[str, Any] | None = None,
) -> TrainResult:
    """Train `spec` to a LoRA adapter; resume from output_dir's newest checkpoint if there is one.

    Raises SpecError for an invalid spec (before loading anything). A cancelled run (should_stop
    returned true) saves a checkpoint at the step it stopped on and returns cancelled=True
    without writing an adapter; running the same spec again resumes from that checkpoint."""
    spec.validate()
    if spec.method == "rm":
        from trainer.reward import RewardJob

        return RewardJob(spec, on_progress, should_stop, lineage or {}).run()
    return _Job(spec, on_progress, should_stop, lineage or {}).run()


def evaluate_adapter(
    spec: JobSpec,
    adapter_dir: str | Path,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> dict[str, float]:
    """The held-out metrics of a trained adapter on `spec.dataset.eval` (any eval set, after
    the run), computed as the run's own evaluation computes them: the same tokenization and
    prompt-start cut, base and trained, with intervals. `spec` is the run's (its LoRA shape,
    max length, beta) with the eval files swapped. Raises SpecError for a spec that cannot be
    evaluated (no held-out rows, a reward model, an adapter of another shape)."""
    spec.validate()
    if spec.method == "rm":
        raise SpecError({"method": "a reward model is audited by its judge (manage.py judge)"})
    if not spec.dataset.eval:
        raise SpecError({"dataset.eval": "names no held-out file to evaluate on"})
    weights = Path(adapter_dir) / "adapter_model.safetensors"
    if not weights.is_file():
        raise SpecError({"adapter": f"{weights} does not exist"})
    return _Job(spec, on_progress, should_stop, {}).evaluate_only(weights)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete TRL checkpoint under output_dir/checkpoints, or None."""
    folder = Path(output_dir) / CHECKPOINTS
    best: tuple[int, Path] | None = None
    if folder.is_dir():
        for child in folder.iterdir():
            match = re.fullmatch(r"checkpoint-(\d+)", child.name)
            if match and (child / "trainer_state.json").is_file():
                step = int(match.group(1))
                if best is None or step > best[0]:
                    best = (step, child)
    return best[1] if best else None


class _Job:
    def __init__(
        self,
        spec: JobSpec,
        on_progress: ProgressFn | None,
        should_stop: StopFn | None,
        lineage: dict[str, Any],
    ) -> None:
        self.spec = spec
        self.on_progress = on_progress
        self.should_stop = should_stop or (lambda: False)
        self.lineage = lineage
        self.out = Path(spec.output_dir)
        self.started = time.monotonic()
        self.total_steps = 0
        self.fit_counts: dict[str, dict[str, int]] = {}
        # DPO's precomputed reference: the held-out pairs and their base log-probs, and what the
        # phase cost (metrics).
        self.eval_reference: tuple[list[Any], Any] | None = None
        self.reference_metrics: dict[str, float] = {}

    # -- reporting -----------------------------------------------------------------------------

    def report(self, phase: str, message: str = "", **values: Any) -> None:
        rss, peak = process_memory_mb()
        progress = Progress(
            phase=phase,
            total_steps=values.pop("total_steps", self.total_steps),
            elapsed_seconds=round(time.monotonic() - self.started, 2),
            rss_mb=round(rss, 1),
            peak_rss_mb=round(peak, 1),
            message=message,
            **values,
        )
        if not progress.log:
            progress.log = f"[{phase}] {message}" if message else f"[{phase}]"
        logger.info(progress.log)
        if self.on_progress is not None:
            self.on_progress(progress)

    def check_stop(self) -> None:
        if self.should_stop():
            raise _Cancelled

    # -- the job -------------------------------------------------------------------------------

    @staticmethod
    def _quiet_libraries() -> None:
        import datasets
        import transformers

        # Progress goes through on_progress (and the CLI's own bar), not through library bars.
        transformers.utils.logging.disable_progress_bar()
        datasets.utils.logging.disable_progress_bar()
        # TRL 1.16 still calls this transformers 5 alias on every step; the warning is noise.
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")

    def run(self) -> TrainResult:
        import torch

        self._quiet_libraries()
        spec = self.spec
        self.device = _pick_device(spec.device)
        self.out.mkdir(parents=True, exist_ok=True)
        resume = self._resume_point()
        self.plan = self._plan_memory()  # refuses a run that cannot fit, before loading weights
        (self.out / "spec.json").write_text(spec.to_json() + "\n", encoding="utf-8")
        from trainer.memory import allocator_in_use

        self.report(
            "loading",
            f"loading {spec.base_model} on {self.device} ({self.plan.describe()}; "
            f"precision: {spec.precision}; malloc: {allocator_in_use()})",
        )
        random.seed(spec.seed)
        torch.manual_seed(spec.seed)
        try:
            self.check_stop()
            model, tokenizer = self._load_model()
            train_rows, eval_rows = self._split_rows(tokenizer)
            self.check_stop()
            trainer = self._make_trainer(model, tokenizer, train_rows, eval_rows)
            if spec.method == "dpo" and spec.precompute_reference:
                self._precompute_reference(trainer, eval_rows)
        except _Cancelled:
            return self._cancelled_result(resume, steps=resume[0] if resume else 0)
        callback = self.callback
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout
        self.total_steps = trainer.args.max_steps if trainer.args.max_steps > 0 else 0
        resumed_from = resume[0] if resume else None
        if resume:
            self.report(
                "training", f"resuming from step {resume[0]} ({resume[1].name})", step=resume[0]
            )
        hooks = self._stop_inside_steps(trainer.model)
        try:
            with compact_lm_head(self.device):
                train_output = trainer.train(
                    resume_from_checkpoint=str(resume[1]) if resume else None
                )
        except _Cancelled:  # asked to stop in the middle of a step: keep the last whole step
            trainer._save_checkpoint(trainer.model, trial=None)
            return self._cancelled_result(
                resume,
                steps=trainer.state.global_step,
                loss_curve=_loss_curve(trainer.state.log_history),
            )
        finally:
            for hook in hooks:
                hook.remove()
        state = trainer.state
        self.total_steps = state.max_steps
        loss_curve = _loss_curve(state.log_history)
        if callback.cancelled:
            return self._cancelled_result(resume, steps=state.global_step, loss_curve=loss_curve)

        metrics: dict[str, float] = {
            "train_loss": _round(train_output.training_loss),
            "train_seconds": _round(train_output.metrics.get("train_runtime", 0.0)),
            "steps_per_second": _round(train_output.metrics.get("train_steps_per_second", 0.0)),
            "tokens_per_second": _round(
                callback.session_tokens / max(1e-9, callback.session_seconds)
            )
            if callback.session_seconds
            else 0.0,
            "tokens_seen": float(state.num_input_tokens_seen),
            "epoch": _round(state.epoch or 0.0),
            "train_rows": float(len(train_rows)),
            "stopped_at_time_limit": 1.0 if callback.out_of_time else 0.0,
            "eval_rows": float(len(eval_rows)),
            # The process's peak resident memory (MiB) up to the end of training.
            "train_peak_rss_mb": _round(process_memory_mb()[1]),
            **self.reference_metrics,
        }
        for split, counts in self.fit_counts.items():
            if split == "train":
                metrics["train_rows_prompt_cut"] = float(counts["prompt_cut"])
                metrics["train_rows_reply_cut"] = float(counts["reply_cut"])
        # The adapter is on disk before evaluation starts: a crash or a cancel there loses no
        # training. The model card and metrics.json are rewritten with the evaluation after it.
        self.report("saving", "writing the adapter", step=state.global_step)
        adapter_dir = self._save_adapter(trainer, tokenizer, metrics, [], loss_curve)
        try:
            self.report(
                "evaluating",
                f"evaluating on {len(eval_rows)} held-out rows",
                step=state.global_step,
            )
            metrics.update(self._evaluate(trainer, eval_rows))
            samples = self._samples(trainer.model, tokenizer, eval_rows or train_rows)
        except _Cancelled:
            result = self._cancelled_result(resume, steps=state.global_step, loss_curve=loss_curve)
            result.adapter_dir = adapter_dir
            return result
        metrics["peak_rss_mb"] = _round(process_memory_mb()[1])  # evaluation included
        self._write_card(adapter_dir, trainer, metrics, samples, loss_curve)
        result = TrainResult(
            adapter_dir=adapter_dir,
            output_dir=self.out,
            metrics=metrics,
            loss_curve=loss_curve,
            steps=state.global_step,
            total_steps=state.max_steps,
            resumed_from_step=resumed_from,
            cancelled=False,
            checkpoint_dir=latest_checkpoint(self.out),
            samples=samples,
            device=self.device,
            seconds=round(time.monotonic() - self.started, 2),
            spec=self.spec.to_dict(),
        )
        self.report(
            "done",
            f"finished {state.global_step} steps; adapter in {adapter_dir}",
            step=state.global_step,
            eval=_only_eval(metrics),
            loss=loss_curve[-1]["loss"] if loss_curve else None,
        )
        return result

    def evaluate_only(self, weights: Path) -> dict[str, float]:
        """`evaluate_adapter`: load the base, put the adapter's weights in, evaluate."""
        import torch
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        self._quiet_libraries()
        spec = self.spec
        self.device = _pick_device(spec.device)
        self.plan = self._plan_memory()
        torch.manual_seed(spec.seed)
        self.report("loading", f"loading {spec.base_model} and {weights.parent.name}")
        model, tokenizer = self._load_model()
        train_rows, eval_rows = self._split_rows(tokenizer)
        trainer = self._make_trainer(model, tokenizer, train_rows[: spec.batch_size], eval_rows)
        loaded = set_peft_model_state_dict(trainer.model, load_file(str(weights)))
        unexpected = list(getattr(loaded, "unexpected_keys", []))
        if unexpected:
            raise SpecError({"adapter": f"does not fit this spec's LoRA (e.g. {unexpected[0]})"})
        self.report("evaluating", f"evaluating on {len(eval_rows)} held-out rows")
        started = time.monotonic()
        metrics = self._evaluate(trainer, eval_rows)
        metrics.setdefault("eval_seconds", _round(time.monotonic() - started))
        metrics["eval_rows"] = float(len(eval_rows))
        return metrics

    def _stop_inside_steps(self, model: Any) -> list[Any]:
        """A cancel must not wait for the end of a step (minutes on a CPU with accumulation):
        every decoder layer asks should_stop() before it runs (the Django side answers from a
        once-a-second check), and a yes aborts the step; the checkpoint of the last whole step
        is saved, so nothing finished is lost."""
        import torch

        def check(module: Any, args: Any) -> None:
            self.check_stop()

        layers = [
            module
            for module in model.modules()
            if isinstance(module, torch.nn.Module)
            and type(module).__name__.endswith("DecoderLayer")
        ]
        return [layer.register_forward_pre_hook(check) for layer in layers]

    def _resume_point(self) -> tuple[int, Path] | None:
        checkpoint = latest_checkpoint(self.out)
        if checkpoint is None:
            return None
        previous_file = self.out / "spec.json"
        if previous_file.is_file():
            previous = json.loads(previous_file.read_text(encoding="utf-8"))
            current = self.spec.to_dict()
            changed = [key for key in _RESUME_KEYS if previous.get(key) != current.get(key)]
            if changed:
                raise SpecError(
                    {
                        "output_dir": f"holds checkpoints of a different run ({', '.join(changed)} differ); "
                        "use a fresh output folder or delete its checkpoints"
                    }
                )
        return int(checkpoint.name.split("-")[1]), checkpoint

    def _cancelled_result(
        self,
        resume: tuple[int, Path] | None,
        *,
        steps: int,
        loss_curve: list[dict[str, float]] | None = None,
    ) -> TrainResult:
        checkpoint = latest_checkpoint(self.out)
        self.report(
            "cancelled",
            f"cancelled at step {steps}; a rerun resumes from {checkpoint.name if checkpoint else 'the start'}",
            step=steps,
        )
        return TrainResult(
            adapter_dir=self.out / ADAPTER,
            output_dir=self.out,
            metrics={},
            loss_curve=loss_curve or [],
            steps=steps,
            total_steps=self.total_steps,
            resumed_from_step=resume[0] if resume else None,
            cancelled=True,
            checkpoint_dir=checkpoint,
            device=self.device,
            seconds=round(time.monotonic() - self.started, 2),
            spec=self.spec.to_dict(),
        )

    def _plan_memory(self) -> Any:
        """Fill in micro_batch_size and gradient_checkpointing (when the spec left them open)
        from the model's config.json and the free memory; SpecError when nothing fits."""
        from trainer.memory import (
            ModelShape,
            free_memory,
            memory_override_bytes,
            plan_memory,
        )
        from trainer.models import resolve_base_model

        spec = self.spec
        self.local_model_path = resolve_base_model(spec.base_model)
        shape = ModelShape.from_folder(self.local_model_path)
        if shape is None:  # a hub id not cached yet: nothing to measure before the download
            shape = ModelShape(0, 0, 0, 0, 0, 0)
        free = memory_override_bytes() or free_memory(self.device)
        try:
            plan = plan_memory(
                shape=shape,
                method=spec.method,
                batch_size=spec.batch_size,
                max_length=spec.max_length,
                device=self.device,
                free_bytes=free,
                dtype_bytes=2 if self._bf16_weights() else 4,
                micro_batch_size=spec.micro_batch_size,
                gradient_checkpointing=spec.gradient_checkpointing,
            )
        except MemoryError as error:
            field = "micro_batch_size" if spec.micro_batch_size else "max_length"
            raise SpecError({field: str(error)}) from None
        spec.micro_batch_size = plan.micro_batch_size
        spec.gradient_checkpointing = plan.gradient_checkpointing
        spec.precision = "bf16" if self._use_bf16() else "fp32"  # the stored spec names it
        return plan

    def _load_model(self) -> tuple[Any, Any]:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        local = self.local_model_path
        tokenizer = AutoTokenizer.from_pretrained(local)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        dtype = torch.bfloat16 if self._bf16_weights() else torch.float32
        model = AutoModelForCausalLM.from_pretrained(local, dtype=dtype)
        return model, tokenizer

    def _use_bf16(self) -> bool:
        """bf16 compute (spec.precision, else where the device has it natively)."""
        import torch

        from trainer.memory import cpu_bf16_supported, use_bf16

        if self.device == "cuda":
            supported = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        else:
            supported = cpu_bf16_supported()
        return use_bf16(self.device, supported, self.spec.precision)

    def _bf16_weights(self) -> bool:
        """A GPU in bf16 holds the weights in bf16; a CPU keeps them in float32 and runs the
        matrix products in bf16 under autocast (the residual stream, norms and softmax stay
        float32, as transformers' Trainer does with bf16=True on a CPU)."""
        return self.device == "cuda" and self._use_bf16()

    def _autocast(self) -> Any:
        """bf16 autocast for the evaluation's and the samples' forward passes on a CPU in bf16
        (the trainer's own passes get it from bf16=True); nothing elsewhere."""
        import torch

        if self.device == "cpu" and self._use_bf16():
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _split_rows(self, tokenizer: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Train and eval rows in TRL's format; the held-out split is fixed by the seed."""
        spec = self.spec
        rows = [row for path in spec.dataset.train for row in read_rows(path)]
        eval_rows = [row for path in spec.dataset.eval for row in read_rows(path)]
        if not spec.dataset.eval and spec.eval_split > 0:
            order = list(range(len(rows)))
            random.Random(spec.seed).shuffle(order)
            cut = held_out_count(len(rows), spec.eval_split)
            eval_rows = [rows[i] for i in sorted(order[:cut])]
            rows = [rows[i] for i in sorted(order[cut:])]
        chat = bool(tokenizer.chat_template)
        return [_to_trl(r, spec.method, chat) for r in rows], [
            _to_trl(r, spec.method, chat) for r in eval_rows
        ]

    def _make_trainer(
        self,
        model: Any,
        tokenizer: Any,
        train_rows: list[dict[str, Any]],
        eval_rows: list[dict[str, Any]],
    ) -> Any:
        from datasets import Dataset
        from peft import LoraConfig

        spec = self.spec
        lora = LoraConfig(
            r=spec.lora.r,
            lora_alpha=spec.lora.alpha,
            lora_dropout=spec.lora.dropout,
            target_modules=lora_target_modules(model, spec.lora),
            task_type="CAUSAL_LM",
        )
        common: dict[str, Any] = {
            "output_dir": str(self.out / CHECKPOINTS),
            "per_device_train_batch_size": spec.micro_batch_size,
            "per_device_eval_batch_size": spec.micro_batch_size,
            # batch_size rows per step, in forward passes of micro_batch_size rows
            "gradient_accumulation_steps": spec.gradient_accumulation
            * (spec.batch_size // (spec.micro_batch_size or spec.batch_size)),
            "learning_rate": spec.learning_rate,
            "num_train_epochs": spec.epochs,
            "max_steps": spec.max_steps if spec.max_steps is not None else -1,
            "warmup_steps": spec.warmup_ratio,  # transformers 5: a float below 1 is a ratio
            "logging_steps": spec.logging_steps,
            "save_strategy": "steps",
            "save_steps": spec.save_steps,
            "save_total_limit": 2,
            "eval_strategy": "no",  # evaluated once at the end, by us
            "seed": spec.seed,
            "data_seed": spec.seed,
            "report_to": [],
            "disable_tqdm": True,
            "use_cpu": self.device == "cpu",
            "bf16": self._use_bf16(),
            "activation_checkpointing": bool(spec.gradient_checkpointing),  # transformers 5 name
            "activation_checkpointing_kwargs": {"use_reentrant": False},
            "max_length": spec.max_length,
            "include_num_input_tokens_seen": "non_padding",
            "dataloader_num_workers": 0,
            "dataset_num_proc": None,
        }
        train = Dataset.from_list(train_rows)
        evaluation = Dataset.from_list(eval_rows) if eval_rows and spec.method == "sft" else None
        callback = self.callback = _progress_callback(self)
        if spec.method == "sft":
            from trl import SFTConfig, SFTTrainer

            return SFTTrainer(
                model=model,
                args=SFTConfig(**common),
                train_dataset=train,
                eval_dataset=evaluation,
                processing_class=tokenizer,
                peft_config=lora,
                callbacks=[callback],
            )
        if spec.method == "dpo":
            from trl import DPOConfig

            return _dpo_trainer_class(self)(
                model=model,
                args=DPOConfig(**common, beta=spec.beta),
                train_dataset=train,
                processing_class=tokenizer,
                peft_config=lora,
                callbacks=[callback],
            )
        from trl import KTOConfig, KTOTrainer

        return KTOTrainer(
            model=model,
            args=KTOConfig(
                **common,
                beta=spec.beta,
                desirable_weight=spec.desirable_weight,
                undesirable_weight=spec.undesirable_weight,
            ),
            train_dataset=train,
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[callback],
        )

    # -- evaluation ----------------------------------------------------------------------------

    def _evaluate(self, trainer: Any, eval_rows: list[dict[str, Any]]) -> dict[str, float]:
        if not eval_rows:
            return {}
        if self.spec.method == "sft":
            result = trainer.evaluate()
            loss = float(result["eval_loss"])
            return {"eval_loss": _round(loss), "eval_perplexity": _round(math.exp(min(loss, 50.0)))}
        if self.spec.method == "dpo":
            return self._pair_accuracies(trainer, eval_rows)
        return self._implicit_rewards(trainer.model, trainer.processing_class, eval_rows)

    def _pair_accuracies(self, trainer: Any, rows: list[dict[str, Any]]) -> dict[str, float]:
        """Base and trained preference accuracy over the held-out pairs, batched and without
        gradients: tokenized and cut to max_length by the trainer's own dataset preparation,
        scored with the fused LM head as in training, each pair's prompt run once for both
        replies (`pair_logps`); the base's (reference) log-probs are computed once, with the
        adapter switched off, and serve both the base's accuracy and the implicit reward;
        after a precomputed reference (DPO's default) they are the ones scored before training."""
        from trainer.preference import pair_logps, pair_metrics

        ahead = self.eval_reference  # (pairs, base log-probs) scored before training, if any
        pairs = ahead[0] if ahead is not None else self._eval_pairs(trainer, rows)
        model = trainer.model
        model.eval()
        # Chosen and rejected, by the base (unless remembered) and by the trained model.
        total = 4 * len(pairs)
        done = [0]
        started = time.monotonic()

        def tick(count: int) -> None:
            self.check_stop()
            done[0] += count
            rate = done[0] / max(1e-9, time.monotonic() - started)
            self.report(
                "evaluating",
                log=f"evaluating: {done[0]}/{total} sequences",
                step=trainer.state.global_step,
                eval_done=done[0],
                eval_total=total,
                eta_seconds=round((total - done[0]) / rate, 1) if rate else None,
            )

        with self._autocast():
            if ahead is not None:
                base, cached = ahead[1], True
            else:
                base, cached = self._base_pair_logps(trainer, pairs, tick)
            if cached:
                total = 2 * len(pairs)
            tuned = pair_logps(
                model,
                pairs,
                pad_id=trainer.processing_class.pad_token_id,
                batch_size=self.spec.eval_batch_size,
                on_batch=tick,
            )
        metrics = pair_metrics(base=base, trained=tuned, beta=self.spec.beta)
        metrics["eval_seconds"] = _round(time.monotonic() - started)
        metrics["eval_reference_cached"] = 1.0 if cached else 0.0
        counts = self.fit_counts.get("eval", {})
        metrics["eval_rows_prompt_cut"] = float(counts.get("prompt_cut", 0))
        metrics["eval_rows_reply_cut"] = float(counts.get("reply_cut", 0))
        return metrics

    def _base_pair_logps(
        self, trainer: Any, pairs: list[Any], tick: Callable[[int], None]
    ) -> tuple[Any, bool]:
        """The base model's (adapter off) log-probs of PAIRS, and whether they were remembered
        from an earlier run (`cached_pair_logps`, keyed by `_base_logps_identity`)."""
        from trainer.preference import cached_pair_logps, pair_logps

        if not pairs:
            return [], False
        model = trainer.model
        identity = self._base_logps_identity(pairs)

        def score() -> Any:
            with model.disable_adapter():
                return pair_logps(
                    model,
                    pairs,
                    pad_id=trainer.processing_class.pad_token_id,
                    batch_size=self.spec.eval_batch_size,
                    on_batch=tick,
                )

        folder = _base_logps_folder() if identity is not None else None
        return cached_pair_logps(folder, identity, score)

    def _eval_pairs(self, trainer: Any, rows: list[dict[str, Any]]) -> list[Any]:
        """The held-out rows as (prompt, chosen, rejected) token ids, tokenized and cut to
        max_length by the trainer's own dataset preparation."""
        from datasets import Dataset

        if not rows:
            return []
        prepared = trainer._prepare_dataset(
            Dataset.from_list(rows), trainer.processing_class, trainer.args, "eval"
        )
        return [(row["prompt_ids"], row["chosen_ids"], row["rejected_ids"]) for row in prepared]

    def _precompute_reference(self, trainer: Any, eval_rows: list[dict[str, Any]]) -> None:
        """DPO's reference log-probs, computed once before the first step instead of by a
        no-grad forward of the base in every step (a quarter to a third of a step's work).

        The base scores each training pair and each held-out pair the way the evaluation does
        (`pair_logps`: no gradients, the prompt run once for both replies, the LM head on the
        reply tokens only), remembered across runs like the evaluation's (a rerun on the same
        pairs and base skips this phase); the training pairs' numbers become the dataset's
        `ref_chosen_logps` / `ref_rejected_logps`, which TRL's loss reads instead of running
        the reference, and the held-out pairs' serve the evaluation's base pass."""
        model = trainer.model
        train_pairs = [
            (row["prompt_ids"], row["chosen_ids"], row["rejected_ids"])
            for row in trainer.train_dataset
        ]
        eval_pairs = self._eval_pairs(trainer, eval_rows)
        total = 2 * (len(train_pairs) + len(eval_pairs))
        done = [0]
        started = time.monotonic()
        last = [0.0]

        def tick(count: int) -> None:
            self.check_stop()
            done[0] += count
            now = time.monotonic()
            if now - last[0] < 1.0 and done[0] < total:
                return  # one report a second: a CLI prints each
            last[0] = now
            rate = done[0] / max(1e-9, now - started)
            self.report(
                "reference",
                log=f"reference log-probs: {done[0]}/{total} sequences",
                eval_done=done[0],
                eval_total=total,
                eta_seconds=round((total - done[0]) / rate, 1) if rate else None,
            )

        scored: list[Any] = []
        remembered = 0
        seconds: list[float] = []
        training = model.training
        model.eval()
        try:
            with self._autocast():
                for pairs in (train_pairs, eval_pairs):
                    begun = time.monotonic()
                    logps, cached = self._base_pair_logps(trainer, pairs, tick)
                    if cached:
                        remembered += len(pairs)
                        tick(2 * len(pairs))
                    scored.append(logps)
                    seconds.append(time.monotonic() - begun)
        finally:
            model.train(training)
        train_logps, eval_logps = scored
        trainer.train_dataset = trainer.train_dataset.add_column(
            "ref_chosen_logps", [chosen[0] for chosen, _ in train_logps]
        ).add_column("ref_rejected_logps", [rejected[0] for _, rejected in train_logps])
        trainer.precompute_ref_logps = True  # TRL's loss reads the columns, runs no reference
        self.eval_reference = (eval_pairs, eval_logps)
        elapsed = time.monotonic() - started
        self.reference_metrics = {
            "reference_seconds": _round(elapsed),
            # the part spent on the held-out pairs: the evaluation's base pass, done ahead
            "reference_eval_seconds": _round(seconds[1]),
            "reference_pairs": float(len(train_pairs) + len(eval_pairs)),
            "reference_pairs_remembered": float(remembered),
        }
        self.report(
            "reference",
            f"reference log-probs of {len(train_pairs)} training and {len(eval_pairs)} "
            f"held-out pairs in {elapsed:.1f}s ({remembered} remembered from an earlier run)",
            eval_done=total,
            eval_total=total,
        )

    def _base_logps_identity(self, pairs: list[Any]) -> dict[str, Any] | None:
        """Everything the base model's log-probs of PAIRS depend on, or None when the weights
        cannot be named exactly (no file hash): then nothing is remembered."""
        from trainer.models import base_weights

        dtype = "bfloat16" if self._bf16_weights() else "float32"
        weights = base_weights(self.spec.base_model, self.local_model_path, dtype)
        if not weights.get("sha256"):
            return None
        return {
            "what": "base pair log-probs v1",
            "weights": weights,
            "compute": "bf16" if self._use_bf16() else "fp32",
            "device": self.device,
            "versions": _versions(),
            "pairs": pairs,
        }

    def _implicit_rewards(
        self, model: Any, tokenizer: Any, rows: list[dict[str, Any]]
    ) -> dict[str, float]:
        """KTO: preference accuracy and margin of the implicit reward beta * (log p_policy -
        log p_ref), scored in batches without gradients (base once, adapter off).

        KTO rows are unpaired: desirable completions are compared with undesirable ones for the
        same prompt where a prompt has both, otherwise with every undesirable completion (the
        AUC of the reward); `eval_kto_pairing` says which."""
        from trainer.preference import sequence_logps

        beta = self.spec.beta
        model.eval()
        sequences = [
            _sequence_ids(tokenizer, r["prompt"], r["completion"], self.spec.max_length)
            for r in rows
        ]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        total, done = 2 * len(sequences), [0]

        def tick(count: int) -> None:
            self.check_stop()
            done[0] += count
            self.report(
                "evaluating",
                log=f"evaluating: {done[0]}/{total} sequences",
                eval_done=done[0],
                eval_total=total,
            )

        batch = self.spec.eval_batch_size
        with self._autocast():
            with model.disable_adapter():
                base = sequence_logps(model, sequences, pad_id=pad, batch_size=batch, on_batch=tick)
            tuned = sequence_logps(model, sequences, pad_id=pad, batch_size=batch, on_batch=tick)
        rewards = [beta * (t[0] - b[0]) for t, b in zip(tuned, base, strict=True)]
        scored = [
            (json.dumps(r["prompt"], sort_keys=True), r["label"], reward)
            for r, reward in zip(rows, rewards, strict=True)
        ]
        good = [(p, s) for p, label, s in scored if label]
        bad = [(p, s) for p, label, s in scored if not label]
        metrics: dict[str, float] = {
            "eval_rows_desirable": float(len(good)),
            "eval_rows_undesirable": float(len(bad)),
        }
        if good:
            metrics["eval_reward_desirable"] = _round(sum(s for _, s in good) / len(good))
        if bad:
            metrics["eval_reward_undesirable"] = _round(sum(s for _, s in bad) / len(bad))
        if good and bad:
            same = [(g, b) for pg, g in good for pb, b in bad if pg == pb]
            pairs = same or [(g, b) for _, g in good for _, b in bad]
            metrics["eval_preference_accuracy"] = _round(sum(g > b for g, b in pairs) / len(pairs))
            metrics["eval_reward_margin"] = _round(
                metrics["eval_reward_desirable"] - metrics["eval_reward_undesirable"]
            )
            metrics["eval_pairs"] = float(len(pairs))
            metrics["eval_kto_pairing"] = 1.0 if same else 0.0  # 1: same-prompt pairs, 0: all pairs
        return metrics

    def _samples(
        self, model: Any, tokenizer: Any, rows: list[dict[str, Any]]
    ) -> list[dict[str, str]]:
        """A few greedy generations from held-out prompts, with the adapter and without it: one
        batched generate each (left-padded), capped at sample_max_new_tokens new tokens and
        max_length prompt tokens (a longer prompt loses its start, as in training)."""
        from trainer.inference import ChatModel

        chat = ChatModel(
            model, tokenizer, model_id=self.spec.base_model, adapter_dir=None, device=self.device
        )
        prompts = [_prompt_messages(row, self.spec.method) for row in rows[: self.spec.num_samples]]
        prompts = [messages for messages in prompts if messages]
        kwargs = {
            "max_new_tokens": self.spec.sample_max_new_tokens,
            "temperature": 0.0,
            "max_prompt_tokens": self.spec.max_length,
        }
        self.check_stop()
        with self._autocast():
            tuned = chat.chat_batch(prompts, **kwargs)
            self.check_stop()
            with model.disable_adapter():
                base = chat.chat_batch(prompts, **kwargs)
        return [
            {"prompt": messages[-1]["content"], "adapter": answer, "base": base_answer}
            for messages, answer, base_answer in zip(prompts, tuned, base, strict=True)
        ]

    # -- artefacts -----------------------------------------------------------------------------

    def _save_adapter(
        self,
        trainer: Any,
        tokenizer: Any,
        metrics: dict[str, float],
        samples: list[dict[str, str]],
        loss_curve: list[dict[str, float]],
    ) -> Path:
        final = self.out / ADAPTER
        staging = self.out / f".{ADAPTER}-staging"
        if staging.exists():
            shutil.rmtree(staging)
        trainer.model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        # PEFT writes the folder it loaded from (our model cache); vLLM and the registry need the id.
        _name_base_model(staging / "adapter_config.json", self.spec.base_model)
        datasets = [
            {"path": str(path), "sha256": sha256_file(path), "split": split}
            for split, files in (
                ("train", self.spec.dataset.train),
                ("eval", self.spec.dataset.eval),
            )
            for path in files
        ]
        from trainer.models import base_weights

        lineage = {
            "base_model": self.spec.base_model,
            "base_weights": base_weights(
                self.spec.base_model,
                self.local_model_path,
                "bfloat16" if self._bf16_weights() else "float32",
            ),
            # What the matrix products ran in (spec.precision), beside the weights' dtype.
            "compute_dtype": (
                ("bfloat16 (autocast, float32 weights)" if self.device == "cpu" else "bfloat16")
                if self._use_bf16()
                else "float32"
            ),
            "method": self.spec.method,
            "datasets": datasets,
            "spec": self.spec.to_dict(),
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": socket.gethostname(),
            "device": self.device,
            "versions": _versions(),
            **self.lineage,
        }
        (staging / "lineage.json").write_text(
            json.dumps(lineage, indent=2, default=str) + "\n", encoding="utf-8"
        )
        self.lineage_written = lineage
        (staging / "README.md").write_text(model_card(lineage, metrics, samples), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        self._write_card(final, trainer, metrics, samples, loss_curve)
        return final

    def _write_card(
        self,
        adapter_dir: Path,
        trainer: Any,
        metrics: dict[str, float],
        samples: list[dict[str, str]],
        loss_curve: list[dict[str, float]],
    ) -> None:
        (adapter_dir / "README.md").write_text(
            model_card(self.lineage_written, metrics, samples), encoding="utf-8"
        )
        payload = {
            "method": self.spec.method,
            "base_model": self.spec.base_model,
            "steps": trainer.state.global_step,
            "metrics": metrics,
            "samples": samples,
            "loss_curve": loss_curve,
        }
        (self.out / "metrics.json").write_text(
            json.dumps(payload, indent=2) + "\n", encoding="utf-8"
        )


def _progress_callback(job: _Job) -> Any:
    """A TrainerCallback that feeds on_progress and stops training when asked (defined here so
    that importing this module imports no transformers)."""
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def __init__(self) -> None:
            self.cancelled = False
            self.session_tokens = 0
            self.session_seconds = 0.0
            self._start: tuple[float, int] = (time.monotonic(), 0)
            self._mark = self._start
            self._tokens_per_second: float | None = None
            self._start_step = 0
            self.out_of_time = False

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            job.total_steps = state.max_steps
            self._start = self._mark = (time.monotonic(), state.num_input_tokens_seen)
            self._start_step = state.global_step
            job.report("training", f"training to step {state.max_steps}", step=state.global_step)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            now, seen = time.monotonic(), state.num_input_tokens_seen
            if now > self._mark[0]:
                self._tokens_per_second = (seen - self._mark[1]) / (now - self._mark[0])
            self._mark = (now, seen)
            self.session_seconds = now - self._start[0]
            self.session_tokens = seen - self._start[1]
            if job.should_stop():
                self.cancelled = True
                control.should_training_stop = True
                control.should_save = True  # keep the work done so far: a rerun resumes here
            elif state.max_steps and state.global_step >= state.max_steps:
                control.should_save = True  # the last step is a checkpoint before evaluation
            elif job.spec.max_minutes and now - self._start[0] > job.spec.max_minutes * 60:
                self.out_of_time = True
                control.should_training_stop = True
                control.should_save = True

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            # PEFT writes the folder the weights came from (our cache); name the hub id, as the
            # final adapter does, so a checkpoint is as servable as the adapter.
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            _name_base_model(folder / "adapter_config.json", job.spec.base_model)

        def on_log(
            self,
            args: Any,
            state: Any,
            control: Any,
            logs: dict[str, Any] | None = None,
            **kwargs: Any,
        ) -> None:
            logs = logs or {}
            if "loss" not in logs:
                return
            loss, lr, rate = float(logs["loss"]), logs.get("learning_rate"), self._tokens_per_second
            line = f"step {state.global_step}/{state.max_steps} loss {loss:.4f}"
            if lr is not None:
                line += f" lr {float(lr):.2e}"
            if rate:
                line += f" {rate:,.0f} tok/s"
            elapsed = time.monotonic() - self._start[0]
            done_here = state.global_step - self._start_step
            eta = (
                round((state.max_steps - state.global_step) * elapsed / done_here, 1)
                if done_here > 0 and state.max_steps
                else None
            )
            extra = {
                k: float(v)
                for k, v in logs.items()
                if k.startswith(("rewards/", "kl")) and isinstance(v, int | float)
            }
            job.report(
                "training",
                step=state.global_step,
                epoch=round(float(state.epoch or 0.0), 4),
                loss=loss,
                learning_rate=float(lr) if lr is not None else None,
                eval=extra,
                tokens_per_second=round(rate, 1) if rate else None,
                eta_seconds=eta,
                log=line,
            )

    return ProgressCallback()


def _dpo_trainer_class(job: _Job) -> Any:
    """TRL's DPOTrainer, with long pairs cut at the prompt's start instead of dropped.

    TRL keeps the start of prompt + reply and drops every row whose prompt alone reaches
    max_length (15 % of HH-RLHF at 256 tokens, silently). Here TRL tokenizes without a limit and
    `fit_pair` cuts each pair to max_length, keeping the reply; the rows cut are counted in
    `job.fit_counts` (prompt shortened, reply shortened) and none is dropped."""
    from trl import DPOTrainer

    from trainer.preference import fit_pair

    class SinkholeDPOTrainer(DPOTrainer):
        def _prepare_dataset(
            self, dataset: Any, processing_class: Any, args: Any, dataset_name: str
        ) -> Any:
            limit = args.max_length
            args.max_length = None  # tokenize whole; no row is dropped
            try:
                dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
            finally:
                args.max_length = limit
            if limit is None:
                return dataset

            def fit(row: dict[str, Any]) -> dict[str, Any]:
                prompt, chosen, rejected, cut = fit_pair(
                    row["prompt_ids"], row["chosen_ids"], row["rejected_ids"], limit
                )
                return {
                    "prompt_ids": prompt,
                    "chosen_ids": chosen,
                    "rejected_ids": rejected,
                    "fit_cut": cut,
                }

            dataset = dataset.map(fit)
            cuts = dataset["fit_cut"]
            job.fit_counts[dataset_name] = {
                "rows": len(cuts),
                "prompt_cut": sum(c == "prompt" for c in cuts),
                "reply_cut": sum(c == "reply" for c in cuts),
            }
            return dataset.remove_columns("fit_cut")

    return SinkholeDPOTrainer


# -- helpers ------------------------------------------------------------------------------------


def _name_base_model(config_path: Path, model_id: str) -> None:
    if not config_path.is_file():
        return
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = model_id
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def lora_target_modules(model: Any, lora: Any) -> str | list[str]:
    """PEFT's target modules for a LoraSpec: as the spec names them, or, with `top_layers`, the
    full names of the matching linear layers inside the model's last `top_layers` blocks (PEFT's
    own `layers_to_transform` refuses "all-linear"). More blocks than the model has: all."""
    if lora.top_layers is None:
        return lora.target_modules
    import torch

    blocks = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    first = max(0, blocks - lora.top_layers)
    wanted = None if lora.target_modules == "all-linear" else list(lora.target_modules)
    names = []
    for name, module in model.named_modules():
        block = re.search(r"(?:^|\.)layers\.(\d+)\.", name)
        if not isinstance(module, torch.nn.Linear) or block is None:
            continue
        if int(block.group(1)) < first:
            continue
        if wanted is not None and not any(name == w or name.endswith("." + w) for w in wanted):
            continue
        names.append(name)
    if not names:
        where = f"the model's last {lora.top_layers} blocks"
        raise SpecError({"lora.top_layers": f"found no linear layer to adapt in {where}"})
    return names


@contextlib.contextmanager
def compact_lm_head(device: str) -> Iterator[None]:
    """TRL's fused LM head, on a CPU, projects only the positions that have a label (the
    replies), as it does on a GPU. TRL scores every position (prompt and padding included) on
    devices without Triton, so that a compiled kernel's shapes stay fixed (Neuron); nothing is
    compiled on a CPU, and the masked positions are a half or more of a DPO pass. Same
    numbers: the masked positions are zeroed either way. TRL decides by `_use_triton` in
    `trl.trainer.utils` (used there for this choice alone), which this swaps while training."""
    if device != "cpu":
        yield
        return
    import trl.trainer.utils as trl_utils

    decide = getattr(trl_utils, "_use_triton", None)
    if decide is None:  # another TRL: leave its head as it is
        yield
        return
    trl_utils._use_triton = lambda device: True
    try:
        yield
    finally:
        trl_utils._use_triton = decide


def _pick_device(device: str) -> str:
    from trainer.inference import pick_device

    return pick_device(device)


def _to_trl(row: dict[str, Any], method: str, chat: bool) -> dict[str, Any]:
    """Keep only the method's columns; with a chat template, plain-text turns become messages so
    training sees the same template as inference."""
    if method == "sft":
        return {"messages": [_message(m) for m in row["messages"]]}
    completions = ("chosen", "rejected") if method == "dpo" else ("completion",)
    out: dict[str, Any] = {}
    conversational = chat or isinstance(row["prompt"], list)
    out["prompt"] = _as_messages(row["prompt"], "user") if conversational else row["prompt"]
    for name in completions:
        out[name] = _as_messages(row[name], "assistant") if conversational else row[name]
    if method == "kto":
        out["label"] = bool(row["label"])
    return out


def _message(message: dict[str, Any]) -> dict[str, str]:
    return {"role": str(message["role"]), "content": str(message["content"])}


def _as_messages(value: Any, role: str) -> list[dict[str, str]]:
    if isinstance(value, list):
        return [_message(m) for m in value]
    return [{"role": role, "content": str(value)}]


def _prompt_messages(row: dict[str, Any], method: str) -> list[dict[str, str]]:
    if method == "sft":
        messages = row["messages"]
        last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
        return messages[: last_user + 1] if last_user is not None else []
    prompt = row["prompt"]
    return prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]


def _sequence_ids(
    tokenizer: Any, prompt: Any, completion: Any, max_length: int
) -> tuple[list[int], list[int]]:
    """(prompt ids, completion ids) tokenized the way TRL does (chat template applied), cut to
    max_length at the prompt's start like the DPO pairs."""
    from trainer.preference import fit_pair

    if isinstance(prompt, list):
        prompt_text = tokenizer.apply_chat_template(
            prompt, tokenize=False, add_generation_prompt=True
        )
        full_text = tokenizer.apply_chat_template(prompt + completion, tokenize=False)
    else:
        prompt_text, full_text = prompt, prompt + completion
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    start = 0
    while start < min(len(prompt_ids), len(full_ids)) and prompt_ids[start] == full_ids[start]:
        start += 1
    start = max(1, min(start, len(full_ids) - 1))
    kept, reply, _, _ = fit_pair(full_ids[:start], full_ids[start:], [], max_length)
    return kept, reply


def _loss_curve(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    curve = []
    for entry in log_history:
        if "loss" in entry and "step" in entry:
            point = {"step": int(entry["step"]), "loss": float(entry["loss"])}
            for key in (
                "learning_rate",
                "epoch",
                "grad_norm",
                "rewards/margins",
                "rewards/accuracies",
            ):
                if isinstance(entry.get(key), int | float):
                    point[key] = float(entry[key])
            curve.append(point)
    return curve


def _only_eval(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k.startswith("eval_")}


def _round(value: float) -> float:
    return float(f"{float(value):.6g}")


def _base_logps_folder() -> Path | None:
    """Where base log-probs are remembered: $SINKHOLE_TRAIN_LOGPS_CACHE ("" or "off": nowhere),
    else beside the converted models (trainer.models.cache_root)."""
    from trainer.models import cache_root

    env = os.environ.get("SINKHOLE_TRAIN_LOGPS_CACHE")
    if env is not None:
        return None if env.strip().lower() in {"", "off", "0"} else Path(env).expanduser()
    return cache_root().parent / "base-logps"


def _versions() -> dict[str, str]:
    import importlib.metadata

    versions = {}
    for name in ("torch", "transformers", "trl", "peft"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def model_card(
    lineage: dict[str, Any], metrics: dict[str, float], samples: list[dict[str, str]]
) -> str:
    """A Hugging Face style model card (YAML front matter + Markdown) with the whole lineage."""
    spec = lineage.get("spec", {})
    lines = [
        "---",
        f"base_model: {lineage['base_model']}",
        "library_name: peft",
        "tags:",
        f"- {lineage['method']}",
        "- lora",
        "- trl",
        "- sinkhole",
        "---",
        "",
        f"# LoRA adapter ({lineage['method'].upper()}) for {lineage['base_model']}",
        "",
        "Trained by Sinkhole from curated user feedback.",
        "",
        "## Lineage",
        "",
        f"- base model: `{lineage['base_model']}`",
        f"- method: {lineage['method']}",
        f"- trained at: {lineage.get('trained_at', '')} on {lineage.get('host', '')} ({lineage.get('device', '')})",
    ]
    weights = lineage.get("base_weights") or {}
    if weights:
        lines.append(
            f"- base weights: {weights.get('source', '')}, `{weights.get('file', '')}` "
            f"(sha256 `{weights.get('sha256', '')}`), {weights.get('dtype', '')}"
        )
        if weights.get("dequantized"):
            lines += [
                "",
                f"> **Trained on dequantized {weights.get('quantization')} weights.** "
                f"{_card_text(weights.get('note', ''))}",
                "",
            ]
    for key, value in lineage.items():
        if key not in {
            "base_weights",
            "base_model",
            "method",
            "datasets",
            "spec",
            "trained_at",
            "host",
            "device",
            "versions",
        }:
            lines.append(f"- {key}: {_card_text(value)}")
    lines += ["", "### Datasets", "", "| split | file | sha256 |", "| --- | --- | --- |"]
    for item in lineage.get("datasets", []):
        lines.append(
            f"| {item['split']} | `{os.path.basename(item['path'])}` | `{item['sha256']}` |"
        )
    lines += ["", "## Hyperparameters", "", "| setting | value |", "| --- | --- |"]
    for key, value in _flatten(spec).items():
        if key not in {"dataset.train", "dataset.eval", "output_dir"}:
            lines.append(f"| {key} | {_card_text(value)} |")
    lines += ["", "## Metrics", "", "| metric | value |", "| --- | --- |"]
    for key, value in metrics.items():
        lines.append(f"| {key} | {value:g} |")
    if samples:
        lines += ["", "## Sample generations (greedy, held-out prompts)", ""]
        for sample in samples:
            lines += [
                f"**Prompt:** {_card_text(sample['prompt'])}",
                "",
                f"- adapter: {_card_text(sample['adapter'])}",
                f"- base: {_card_text(sample['base'])}",
                "",
            ]
    versions = lineage.get("versions", {})
    if versions:
        lines += ["", "Software: " + ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    return "\n".join(lines).rstrip() + "\n"


def _card_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text.replace("|", "\\|").replace("\n", " ").strip()


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
