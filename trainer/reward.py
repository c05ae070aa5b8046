"""Pairwise reward models: a LoRA on the base model plus a one-output score head, trained with
TRL's `RewardTrainer` on DPO-shaped rows (prompt, chosen, rejected).

    spec = JobSpec.from_dict({"method": "rm", "dataset": {"train": [...], "eval": [...]}})
    result = run_job(spec)            # dispatches here for method "rm"
    scorer = RewardScorer.load(result.adapter_dir)
    scorer.score([(messages, "a reply"), ...])   # one float per (prompt, reply)

The training loop, checkpoints, resume, cancel and progress are `trainer.run`'s; this module only
changes what is loaded (`AutoModelForSequenceClassification`, `num_labels=1`, PEFT task
`SEQ_CLS` so the score head is trained and saved beside the adapter), how rows are tokenized
(the chat template of prompt + reply, truncated from the left so the reply that differs is
always kept: TRL would drop a pair longer than `max_length` instead), and how the result is
evaluated: held-out pairwise accuracy with a Wilson 95 % interval.

Heavy libraries are imported inside the functions."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from trainer.run import _Job, _round
from trainer.spec import held_out_count, read_rows

# A reply is scored as the model's output on the whole conversation that ends with it.
Conversation = list[dict[str, str]]


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (scipy's binomtest), (0, 1) with no trials."""
    if trials <= 0:
        return 0.0, 1.0
    from scipy.stats import binomtest

    interval = binomtest(successes, trials).proportion_ci(
        confidence_level=confidence, method="wilson"
    )
    return float(interval.low), float(interval.high)


def as_messages(value: Any, role: str) -> Conversation:
    """Plain text becomes one message with `role`; a list of chat messages is kept as it is."""
    if isinstance(value, list):
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in value]
    return [{"role": role, "content": str(value)}]


def conversation_ids(tokenizer: Any, prompt: Any, reply: Any, max_length: int) -> list[int]:
    """Token ids of prompt + reply through the chat template (plain text joined when the
    tokenizer has none), keeping the last `max_length` tokens: the reply is what is judged."""
    if tokenizer.chat_template:
        messages = as_messages(prompt, "user") + as_messages(reply, "assistant")
        text = tokenizer.apply_chat_template(messages, tokenize=False)
    else:
        prompt_text = prompt if isinstance(prompt, str) else _plain(prompt)
        reply_text = reply if isinstance(reply, str) else _plain(reply)
        text = prompt_text + reply_text + (tokenizer.eos_token or "")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[-max_length:]


def _plain(messages: list[dict[str, Any]]) -> str:
    return "".join(f"\n\n{m['role']}: {m['content']}" for m in messages)


class RewardJob(_Job):
    """`trainer.run`'s job with a sequence-classification model and TRL's RewardTrainer."""

    def _load_model(self) -> tuple[Any, Any]:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from trainer.models import resolve_base_model

        local = resolve_base_model(self.spec.base_model)
        self.local_model_path = local
        tokenizer = AutoTokenizer.from_pretrained(local)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        dtype = torch.bfloat16 if self._use_bf16() else torch.float32
        model = AutoModelForSequenceClassification.from_pretrained(local, num_labels=1, dtype=dtype)
        model.config.pad_token_id = tokenizer.pad_token_id
        return model, tokenizer

    def _split_rows(self, tokenizer: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Pre-tokenized pairs (TRL skips its own tokenizing and length filter on them)."""
        spec = self.spec
        rows = [row for path in spec.dataset.train for row in read_rows(path)]
        eval_rows = [row for path in spec.dataset.eval for row in read_rows(path)]
        if not spec.dataset.eval and spec.eval_split > 0:
            order = list(range(len(rows)))
            random.Random(spec.seed).shuffle(order)
            cut = held_out_count(len(rows), spec.eval_split)
            eval_rows = [rows[i] for i in sorted(order[:cut])]
            rows = [rows[i] for i in sorted(order[cut:])]
        self.eval_source_rows = eval_rows
        return [self._tokenized(tokenizer, r) for r in rows], [
            self._tokenized(tokenizer, r) for r in eval_rows
        ]

    def _tokenized(self, tokenizer: Any, row: dict[str, Any]) -> dict[str, Any]:
        length = self.spec.max_length
        return {
            "chosen_ids": conversation_ids(tokenizer, row["prompt"], row["chosen"], length),
            "rejected_ids": conversation_ids(tokenizer, row["prompt"], row["rejected"], length),
        }

    def _make_trainer(
        self,
        model: Any,
        tokenizer: Any,
        train_rows: list[dict[str, Any]],
        eval_rows: list[dict[str, Any]],
    ) -> Any:
        from datasets import Dataset
        from peft import LoraConfig
        from trl import RewardConfig, RewardTrainer

        from trainer.run import _progress_callback, lora_target_modules

        spec = self.spec
        lora = LoraConfig(
            r=spec.lora.r,
            lora_alpha=spec.lora.alpha,
            lora_dropout=spec.lora.dropout,
            target_modules=lora_target_modules(model, spec.lora),
            task_type="SEQ_CLS",  # PEFT trains and saves the new `score` head with the adapter
        )
        args = RewardConfig(
            output_dir=str(self.out / "checkpoints"),
            per_device_train_batch_size=spec.batch_size,
            per_device_eval_batch_size=spec.batch_size,
            gradient_accumulation_steps=spec.gradient_accumulation,
            learning_rate=spec.learning_rate,
            num_train_epochs=spec.epochs,
            max_steps=spec.max_steps if spec.max_steps is not None else -1,
            warmup_steps=spec.warmup_ratio,
            logging_steps=spec.logging_steps,
            save_strategy="steps",
            save_steps=spec.save_steps,
            save_total_limit=2,
            eval_strategy="no",
            seed=spec.seed,
            data_seed=spec.seed,
            report_to=[],
            disable_tqdm=True,
            use_cpu=self.device == "cpu",
            bf16=self._use_bf16(),
            activation_checkpointing=spec.gradient_checkpointing,
            max_length=spec.max_length,
            include_num_input_tokens_seen="non_padding",
            dataloader_num_workers=0,
            dataset_num_proc=None,
        )
        self.callback = _progress_callback(self)
        return RewardTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(train_rows),
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[self.callback],
        )

    def _evaluate(self, trainer: Any, eval_rows: list[dict[str, Any]]) -> dict[str, float]:
        """Held-out pairwise accuracy (chosen scored above rejected) with its Wilson interval."""
        if not eval_rows:
            return {}
        model = trainer.model
        pad = trainer.processing_class.pad_token_id
        chosen = _score_ids(model, [r["chosen_ids"] for r in eval_rows], pad, self.check_stop)
        rejected = _score_ids(model, [r["rejected_ids"] for r in eval_rows], pad, self.check_stop)
        margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
        right = sum(m > 0 for m in margins)
        low, high = wilson_interval(right, len(margins))
        return {
            "eval_pairwise_accuracy": _round(right / len(margins)),
            "eval_pairwise_accuracy_low": _round(low),
            "eval_pairwise_accuracy_high": _round(high),
            "eval_reward_margin": _round(sum(margins) / len(margins)),
            "eval_pairs": float(len(margins)),
        }

    def _samples(
        self, model: Any, tokenizer: Any, rows: list[dict[str, Any]]
    ) -> list[dict[str, str]]:
        return []  # a reward model does not generate


def _score_ids(
    model: Any, sequences: list[list[int]], pad_id: int, check_stop: Any = None, batch: int = 16
) -> list[float]:
    """One scalar per token sequence, batched, right-padded (the head reads the last real token)."""
    import torch

    model.eval()
    scores: list[float] = []
    # Similar lengths in one batch waste less padding; results go back in the input order.
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    by_index: dict[int, float] = {}
    device = next(model.parameters()).device
    for start in range(0, len(order), batch):
        if check_stop is not None:
            check_stop()
        chunk = order[start : start + batch]
        width = max(len(sequences[i]) for i in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, index in enumerate(chunk):
            seq = sequences[index]
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        for row, index in enumerate(chunk):
            by_index[index] = float(logits[row, 0])
    scores = [by_index[i] for i in range(len(sequences))]
    return scores


class RewardScorer:
    """A trained reward model, loaded for scoring: base + adapter + score head."""

    def __init__(self, model: Any, tokenizer: Any, *, max_length: int = 512) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length

    @classmethod
    def load(
        cls, adapter_dir: str | Path, *, base_model: str | None = None, device: str = "auto"
    ) -> RewardScorer:
        """Load an adapter folder written by a `rm` run (its config names the base model)."""
        import torch
        from peft import PeftModel
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from trainer.inference import pick_device
        from trainer.models import resolve_base_model

        adapter_dir = Path(adapter_dir)
        config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
        base = base_model or config["base_model_name_or_path"]
        local = resolve_base_model(base)
        tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForSequenceClassification.from_pretrained(
            local, num_labels=1, dtype=torch.float32
        )
        model.config.pad_token_id = tokenizer.pad_token_id
        model = PeftModel.from_pretrained(model, str(adapter_dir))
        model.to(pick_device(device))
        model.eval()
        max_length = 512
        spec_file = adapter_dir / "lineage.json"
        if spec_file.is_file():
            lineage = json.loads(spec_file.read_text(encoding="utf-8"))
            max_length = int(lineage.get("spec", {}).get("max_length", max_length))
        return cls(model, tokenizer, max_length=max_length)

    def score(self, items: list[tuple[Any, Any]], *, batch: int = 16) -> list[float]:
        """The reward of each (prompt, reply); prompt is text or chat messages."""
        ids = [
            conversation_ids(self.tokenizer, prompt, reply, self.max_length)
            for prompt, reply in items
        ]
        return _score_ids(self.model, ids, self.tokenizer.pad_token_id, batch=batch)
