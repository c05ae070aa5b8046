"""The job spec: everything a training run needs, as dataclasses that round-trip through JSON/YAML.

`JobSpec.from_dict` checks the shape (known keys, types) and `validate()` checks the meaning
(files exist and their rows fit the method, the model resolves, the numbers are possible), both
raising one `SpecError` that names every bad field with one sentence each, so the web side can
refuse a run before anything is queued."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.models import SMOLLM2_ID, check_base_model

METHODS = ("sft", "dpo", "kto", "rm")  # rm: a pairwise reward model (trainer/reward.py)
DEVICES = ("auto", "cpu", "cuda")
DATA_SUFFIXES = (".jsonl", ".json", ".parquet")

# LoRA trains a few million fresh parameters, not the whole model, so it wants a far larger step
# than full fine-tuning: TRL's DPO/KTO default of 1e-6 is tuned for full-model RLHF and barely
# moves a 10-100 step LoRA run. 2e-4 is the usual LoRA SFT rate (QLoRA paper, PEFT examples);
# preference losses on top of an instruct model are touchier (the implicit reward compounds over
# the whole completion), so DPO/KTO start 4x lower.
DEFAULT_LEARNING_RATES = {"sft": 2e-4, "dpo": 5e-5, "kto": 5e-5, "rm": 1e-4}

ROW_FIELDS = {
    "sft": ("messages",),
    "dpo": ("prompt", "chosen", "rejected"),
    "kto": ("prompt", "completion", "label"),
    "rm": ("prompt", "chosen", "rejected"),  # DPO-kind rows
}
ROLES = {"system", "user", "assistant", "tool"}


class SpecError(ValueError):
    """A spec that cannot run. `errors` maps a field path ("lora.r") to one sentence."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__(
            " ".join(f"{path}: {message.rstrip('.')}." for path, message in self.errors.items())
        )


@dataclass
class DatasetSpec:
    """Training files (JSONL or Parquet, TRL's row formats) and optional evaluation files."""

    train: list[str] = field(default_factory=list)
    eval: list[str] = field(default_factory=list)


@dataclass
class LoraSpec:
    """PEFT LoRA settings. alpha/r scales the update; 'all-linear' adapts every linear layer."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"


@dataclass
class JobSpec:
    """One fine-tune: a method, a base model, data and hyperparameters, and where to write."""

    method: str = "sft"
    base_model: str = SMOLLM2_ID
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    lora: LoraSpec = field(default_factory=LoraSpec)
    learning_rate: float | None = None  # None: DEFAULT_LEARNING_RATES[method]
    epochs: float = 1.0
    max_steps: int | None = None  # when set, overrides epochs
    batch_size: int = 4
    gradient_accumulation: int = 1
    max_length: int = 512
    beta: float = 0.1  # DPO/KTO: strength of the pull towards the reference model
    desirable_weight: float = 1.0  # KTO: loss weight of label=true rows
    undesirable_weight: float = 1.0  # KTO: loss weight of label=false rows
    warmup_ratio: float = 0.0
    # Recomputes activations in the backward pass: saves GPU memory on big models, costs ~20-30%
    # time. TRL turns it on by default; off here because the default models are small.
    gradient_checkpointing: bool = False
    seed: int = 42
    eval_split: float = 0.1  # fraction of train rows held out when no eval files are given
    output_dir: str = "var/training/run"
    device: str = "auto"
    save_steps: int = 50
    logging_steps: int = 1
    num_samples: int = 3  # sample generations written to metrics.json at the end
    sample_max_new_tokens: int = 48

    def __post_init__(self) -> None:
        if self.learning_rate is None and self.method in DEFAULT_LEARNING_RATES:
            self.learning_rate = DEFAULT_LEARNING_RATES[self.method]

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base_dir: str | Path | None = None) -> JobSpec:
        """Build a spec from plain data; relative file paths are taken from `base_dir` if given."""
        if not isinstance(data, dict):
            raise SpecError({"spec": "must be a mapping of fields"})
        errors: dict[str, str] = {}
        values = _convert(cls, data, "", errors)
        if errors:
            raise SpecError(errors)
        values["dataset"] = DatasetSpec(**values.get("dataset", {}))
        values["lora"] = LoraSpec(**values.get("lora", {}))
        spec = cls(**values)
        if base_dir is not None:
            base = Path(base_dir)
            spec.dataset.train = [_under(base, p) for p in spec.dataset.train]
            spec.dataset.eval = [_under(base, p) for p in spec.dataset.eval]
            spec.output_dir = _under(base, spec.output_dir)
        return spec

    @classmethod
    def from_file(cls, path: str | Path) -> JobSpec:
        """Load a .json, .yaml or .yml spec; relative paths in it are relative to the file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise SpecError({"spec": f"cannot read {path} ({error.strerror or error})"}) from error
        try:
            if path.suffix.lower() in {".yaml", ".yml"}:
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as error:  # noqa: BLE001 - any parse error is the user's file
            raise SpecError(
                {"spec": f"{path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {error}"}
            ) from error
        return cls.from_dict(data or {}, base_dir=path.parent)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    # -- checking ------------------------------------------------------------------------------

    def validate(self, *, check_model: bool = True, check_files: bool = True) -> JobSpec:
        """Raise SpecError naming every impossible setting; return self when the spec can run."""
        errors: dict[str, str] = {}
        if self.method not in METHODS:
            errors["method"] = f"must be one of {', '.join(METHODS)}, not {self.method!r}"
        if self.device not in DEVICES:
            errors["device"] = f"must be one of {', '.join(DEVICES)}, not {self.device!r}"
        _positive_int(errors, "lora.r", self.lora.r, "the LoRA rank")
        _positive(errors, "lora.alpha", self.lora.alpha)
        if not 0 <= self.lora.dropout < 1:
            errors["lora.dropout"] = f"must be in [0, 1), not {self.lora.dropout}"
        targets = self.lora.target_modules
        if isinstance(targets, str):
            if targets != "all-linear":
                errors["lora.target_modules"] = "must be 'all-linear' or a list of module names"
        elif not targets or not all(isinstance(t, str) and t for t in targets):
            errors["lora.target_modules"] = (
                "must be 'all-linear' or a non-empty list of module names"
            )
        if self.method in METHODS and (
            self.learning_rate is None or not 0 < self.learning_rate < 1
        ):
            errors["learning_rate"] = (
                f"must be between 0 and 1 (exclusive), not {self.learning_rate}"
            )
        if self.max_steps is None:
            if not self.epochs > 0:
                errors["epochs"] = (
                    f"must be more than 0 when max_steps is not set, not {self.epochs}"
                )
        else:
            _positive_int(errors, "max_steps", self.max_steps, "the number of optimizer steps")
        _positive_int(errors, "batch_size", self.batch_size, "the batch size")
        _positive_int(
            errors, "gradient_accumulation", self.gradient_accumulation, "the accumulation"
        )
        if self.max_length < 16:
            errors["max_length"] = f"must be at least 16 tokens, not {self.max_length}"
        _positive(errors, "beta", self.beta)
        _positive(errors, "desirable_weight", self.desirable_weight)
        _positive(errors, "undesirable_weight", self.undesirable_weight)
        if not 0 <= self.warmup_ratio < 1:
            errors["warmup_ratio"] = f"must be in [0, 1), not {self.warmup_ratio}"
        if not 0 <= self.eval_split < 1:
            errors["eval_split"] = (
                f"must be in [0, 1) (a fraction of the train rows), not {self.eval_split}"
            )
        if self.seed < 0:
            errors["seed"] = f"must be 0 or more, not {self.seed}"
        _positive_int(errors, "save_steps", self.save_steps, "the checkpoint interval")
        _positive_int(errors, "logging_steps", self.logging_steps, "the logging interval")
        if self.num_samples < 0:
            errors["num_samples"] = f"must be 0 or more, not {self.num_samples}"
        _positive_int(
            errors, "sample_max_new_tokens", self.sample_max_new_tokens, "the sample length"
        )
        if not str(self.output_dir).strip():
            errors["output_dir"] = "must name a folder"
        if check_model:
            problem = check_base_model(self.base_model)
            if problem:
                errors["base_model"] = problem
        if check_files and self.method in METHODS:
            self._check_files(errors)
        if errors:
            raise SpecError(errors)
        return self

    def _check_files(self, errors: dict[str, str]) -> None:
        if not self.dataset.train:
            errors["dataset.train"] = "needs at least one JSONL or Parquet file"
            return
        counts: dict[str, int] = {}
        labels: set[bool] = set()
        for key, files in (
            ("dataset.train", self.dataset.train),
            ("dataset.eval", self.dataset.eval),
        ):
            total = 0
            for path in files:
                problem, rows, file_labels = check_rows(path, self.method)
                if problem:
                    errors[key] = problem
                    break
                total += rows
                if key == "dataset.train":
                    labels |= file_labels
            counts[key] = total
        if "dataset.train" in errors or "dataset.eval" in errors:
            return
        train_rows = counts["dataset.train"]
        if train_rows == 0:
            errors["dataset.train"] = "has no rows"
        elif self.method == "kto" and len(labels) < 2:
            which = "desirable (label true)" if labels == {False} else "undesirable (label false)"
            errors["dataset.train"] = f"has no {which} rows; KTO needs both kinds"
        elif not self.dataset.eval and 0 < self.eval_split < 1:
            held_out = held_out_count(train_rows, self.eval_split)
            if train_rows - held_out < 1:
                errors["eval_split"] = (
                    f"holds out {held_out} of {train_rows} rows and leaves none to train on"
                )


def held_out_count(rows: int, eval_split: float) -> int:
    """Rows kept for evaluation: at least one whenever eval_split > 0."""
    return 0 if eval_split <= 0 else max(1, math.floor(rows * eval_split))


def _under(base: Path, path: str) -> str:
    return path if Path(path).expanduser().is_absolute() else str((base / path).resolve())


def _positive(errors: dict[str, str], name: str, value: float) -> None:
    if not value > 0:
        errors[name] = f"must be more than 0, not {value}"


def _positive_int(errors: dict[str, str], name: str, value: int, what: str) -> None:
    if value < 1:
        errors[name] = f"must be at least 1 ({what}), not {value}"


# -- shape conversion -------------------------------------------------------------------------

_NESTED = {"dataset": DatasetSpec, "lora": LoraSpec}


def _convert(
    cls: type, data: dict[str, Any], prefix: str, errors: dict[str, str]
) -> dict[str, Any]:
    """Check keys and types of `data` against the dataclass `cls`, coercing what is unambiguous."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in fields:
            close = [name for name in fields if name.startswith(str(key)[:3])]
            hint = f" (did you mean {close[0]}?)" if close else ""
            errors[path] = f"is not a spec field{hint}"
            continue
        if key in _NESTED and cls is JobSpec:
            if not isinstance(value, dict):
                errors[path] = "must be a mapping"
                continue
            values[key] = _convert(_NESTED[key], value, f"{path}.", errors)
            continue
        converted = _coerce(key, value, fields[key].type, path, errors)
        if path not in errors:
            values[key] = converted
    return values


def _coerce(key: str, value: Any, annotation: Any, path: str, errors: dict[str, str]) -> Any:
    kind = str(annotation)
    if value is None:
        if "None" in kind:
            return None
        errors[path] = "must not be empty"
        return None
    if kind.startswith("list"):
        if isinstance(value, str):
            value = [value]  # one file is a list of one
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors[path] = "must be a list of file paths"
        return value
    if kind.startswith("bool"):
        if not isinstance(value, bool):
            errors[path] = f"must be true or false, not {value!r}"
        return value
    if kind.startswith("str | list"):
        if isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            return value
        errors[path] = "must be 'all-linear' or a list of module names"
        return value
    if kind.startswith("str"):
        if not isinstance(value, str):
            errors[path] = "must be a string"
        return value
    if kind.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            errors[path] = f"must be a whole number, not {value!r}"
            return value
        return int(value)
    if kind.startswith("float"):
        if isinstance(value, str):
            try:
                value = float(value)  # YAML reads "5e-5" as a string
            except ValueError:
                pass
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            errors[path] = f"must be a number, not {value!r}"
            return value
        return float(value)
    return value  # pragma: no cover - every field type is handled above


# -- dataset rows -----------------------------------------------------------------------------


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """All rows of a JSONL (or JSON array) or Parquet file, as dicts."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        rows = json.loads(text)
        if not isinstance(rows, list):
            raise ValueError("the JSON file is not an array of rows")
        return rows
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"line {number} is not JSON ({error.msg})") from error
    return rows


def check_rows(path: str | Path, method: str) -> tuple[str | None, int, set[bool]]:
    """(why this file cannot feed `method`, or None; its row count; the KTO labels it holds)."""
    path = Path(path)
    labels: set[bool] = set()
    if not path.is_file():
        return f"file {path} does not exist", 0, labels
    if path.suffix.lower() not in DATA_SUFFIXES:
        return f"file {path} must be JSONL or Parquet ({', '.join(DATA_SUFFIXES)})", 0, labels
    try:
        rows = read_rows(path)
    except Exception as error:  # noqa: BLE001 - unreadable data is the user's file
        return f"file {path} cannot be read: {error}", 0, labels
    for number, row in enumerate(rows, 1):
        problem = row_problem(row, method)
        if problem:
            return f"file {path.name} row {number}: {problem}", len(rows), labels
        if method == "kto":
            labels.add(row["label"])
    return None, len(rows), labels


def row_problem(row: Any, method: str) -> str | None:
    """Why one row does not fit the method's format (TRL's formats), or None."""
    if not isinstance(row, dict):
        return "is not an object"
    need = ROW_FIELDS[method]
    missing = [name for name in need if name not in row]
    if missing:
        shape = ", ".join(need)
        guess = _guess_method(row)
        hint = f"; it looks like a {guess} row" if guess and guess != method else ""
        return f"missing {', '.join(missing)} (a {method} row has {shape}){hint}"
    if method == "sft":
        return _messages_problem(row["messages"], "messages", need_assistant=True)
    if method in ("dpo", "rm"):
        return (
            _text_or_messages_problem(row["prompt"], "prompt")
            or _text_or_messages_problem(row["chosen"], "chosen")
            or _text_or_messages_problem(row["rejected"], "rejected")
            or _same_kind_problem(row, ("prompt", "chosen", "rejected"))
        )
    problem = _text_or_messages_problem(row["prompt"], "prompt") or _text_or_messages_problem(
        row["completion"], "completion"
    )
    if problem:
        return problem
    if not isinstance(row["label"], bool):
        return f"label must be true or false, not {row['label']!r}"
    return _same_kind_problem(row, ("prompt", "completion"))


def _guess_method(row: dict[str, Any]) -> str | None:
    for method, need in ROW_FIELDS.items():
        if all(name in row for name in need):
            return method
    return None


def _text_or_messages_problem(value: Any, name: str) -> str | None:
    if isinstance(value, str):
        return None if value.strip() else f"{name} is empty"
    if isinstance(value, list):
        return _messages_problem(value, name, need_assistant=False)
    return f"{name} must be text or a list of chat messages"


def _messages_problem(value: Any, name: str, *, need_assistant: bool) -> str | None:
    if not isinstance(value, list) or not value:
        return f"{name} must be a non-empty list of chat messages"
    for message in value:
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            return f"{name} holds a message without text content"
        if message.get("role") not in ROLES:
            return f"{name} holds a message with role {message.get('role')!r}"
    if need_assistant and not any(m["role"] == "assistant" for m in value):
        return f"{name} has no assistant message to learn from"
    return None


def _same_kind_problem(row: dict[str, Any], names: tuple[str, ...]) -> str | None:
    kinds = {isinstance(row[name], list) for name in names}
    if len(kinds) > 1:
        return f"{', '.join(names)} must be all text or all chat messages, not a mix"
    return None
