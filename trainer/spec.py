"""The job spec: everything a training run needs, as dataclasses that round-trip through JSON/YAML.

`JobSpec.from_dict` checks the shape (known keys, types) and `validate()` checks the meaning
(files exist and their rows fit the method, the model resolves, the numbers are possible), both
raising one `SpecError` that names every bad field with one sentence each, so the web side can
refuse a run before anything is queued."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, StrictBool, StrictStr

from trainer.memory import PRECISIONS
from trainer.models import SMOLLM2_ID, check_base_model

METHODS = ("sft", "dpo", "kto", "rm")  # rm: a pairwise reward model (trainer/reward.py)
DEVICES = ("auto", "cpu", "cuda")
DATA_SUFFIXES = (".jsonl", ".json", ".parquet")

# LoRA trains a few million fresh parameters, not the whole model, so it wants a far larger step
# than full fine-tuning: TRL's DPO/KTO default of 1e-6 is tuned for full-model RLHF and barely
# moves a 10-100 step LoRA run. 2e-4 is the usual LoRA SFT rate (QLoRA paper, PEFT examples);
# KTO on top of an instruct model is touchier (its KL baseline is noisy at small batches), so it
# starts 4x lower. DPO's sigmoid loss saturates gently and its LoRA runs on CPU are short (a few
# hundred steps): at 5e-5 a 120-step run moved the loss 0.692 -> 0.683 and reached 64 % implicit
# reward accuracy on held-out HH-RLHF; 5e-4 is the rate that moves it within the hour
# (docs/training.md has the measurements). A reward model's rate is the one measured with its
# other defaults below (METHOD_DEFAULTS).
DEFAULT_LEARNING_RATES = {"sft": 2e-4, "dpo": 5e-4, "kto": 5e-5, "rm": 3e-4}

# A preference pair is scored twice per step (chosen and rejected), and the prompt's start is
# what a long pair loses: 256 tokens keep nearly every HH-RLHF reply whole, at half the memory
# and time of 512 per pair. SFT learns from whole conversations and keeps 512. A reward model
# reads each conversation's last 96 tokens (the reply it judges, and the end of the prompt).
DEFAULT_MAX_LENGTHS = {"sft": 512, "dpo": 256, "kto": 256, "rm": 96}

# Other defaults that differ by method, applied to what a spec leaves out (nested: "lora.r").
# The reward model's are the settings measured on this CPU (docs/benchmarks.md, issue 15): a
# LoRA on the top 6 blocks plus the score head, 3 epochs of 8 pairs a step, reached 63 % held-out
# pairwise accuracy on HH-RLHF in 19.5 minutes; the all-linear adapter at 512 tokens and 1 epoch
# that this replaced was not measured to reach anything in that time.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "rm": {"epochs": 3.0, "batch_size": 8, "lora.dropout": 0.05, "lora.top_layers": 6},
}

ROW_FIELDS = {
    "sft": ("messages",),
    "dpo": ("prompt", "chosen", "rejected"),
    "kto": ("prompt", "completion", "label"),
    "rm": ("prompt", "chosen", "rejected"),  # DPO-kind rows
}
ROLES = {"system", "user", "assistant", "tool"}


def _whole(value: Any) -> Any:
    if value is None:
        raise ValueError("must not be empty")
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValueError(f"must be a whole number, not {value!r}")
    return int(value)


def _number(value: Any) -> Any:
    if value is None:
        raise ValueError("must not be empty")
    if isinstance(value, str):
        try:
            value = float(value)  # YAML reads "5e-5" as a string
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"must be a number, not {value!r}")
    return float(value)


def _optional(check: Any) -> Any:
    return lambda value: None if value is None else check(value)


def _paths(value: Any) -> Any:
    if isinstance(value, str):
        return [value]  # one file is a list of one
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of file paths")
    return value


def _modules(value: Any) -> Any:
    if isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    ):
        return value
    raise ValueError("must be 'all-linear' or a list of module names")


# Field types: pydantic coerces what is unambiguous (3.0 -> 3, "5e-5" -> 5e-05, one path -> a list)
# and refuses the rest with the sentence the validator raises.
Whole = Annotated[int, BeforeValidator(_whole)]
OptionalWhole = Annotated[int | None, BeforeValidator(_optional(_whole))]
Number = Annotated[float, BeforeValidator(_number)]
OptionalNumber = Annotated[float | None, BeforeValidator(_optional(_number))]
Paths = Annotated[list[str], BeforeValidator(_paths)]
Modules = Annotated[str | list[str], BeforeValidator(_modules)]
OptionalFlag = StrictBool | None


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

    train: Paths = field(default_factory=list)
    eval: Paths = field(default_factory=list)


@dataclass
class LoraSpec:
    """PEFT LoRA settings. alpha/r scales the update; 'all-linear' adapts every linear layer."""

    r: Whole = 16
    alpha: Whole = 32
    # 0: PEFT then skips the dropout layer, which otherwise keeps a copy of every adapted
    # module's input for the backward pass (about 300 MB for a DPO step of SmolLM2 at 256
    # tokens); a few-hundred-step run does not overfit enough for it to matter.
    dropout: Number = 0.0
    target_modules: Modules = "all-linear"
    # Adapt only the last N transformer blocks (None: every block). Fewer blocks train faster:
    # the backward pass stops where the first adapted block is.
    top_layers: OptionalWhole = None


@dataclass
class JobSpec:
    """One fine-tune: a method, a base model, data and hyperparameters, and where to write.

    A field left at None is chosen when the job starts (the learning rate by method, the
    micro-batch and gradient checkpointing by the memory the machine has) and written back, so
    the spec a run stores names every value it used."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    method: StrictStr = "sft"
    base_model: StrictStr = SMOLLM2_ID
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    lora: LoraSpec = field(default_factory=LoraSpec)
    learning_rate: OptionalNumber = None  # None: DEFAULT_LEARNING_RATES[method]
    epochs: Number = 1.0
    max_steps: OptionalWhole = None  # when set, overrides epochs
    # Wall-clock budget of the training phase: at the first step past it the run saves, stops
    # and is evaluated as if it had reached max_steps (the result says so). None: no budget.
    max_minutes: OptionalNumber = None
    batch_size: Whole = 4  # rows (DPO: pairs) per optimizer step, before gradient_accumulation
    gradient_accumulation: Whole = 1
    # Rows per forward pass; batch_size is reached by accumulating micro-batches. None: the
    # largest divisor of batch_size that fits the machine's free memory (1 on a small CPU box,
    # which also means no padding at all). Same optimizer step either way.
    micro_batch_size: OptionalWhole = None
    # Tokens of prompt + reply; a longer pair loses its prompt's start, not the reply.
    # None: DEFAULT_MAX_LENGTHS[method].
    max_length: OptionalWhole = None
    beta: Number = 0.1  # DPO/KTO: strength of the pull towards the reference model
    # DPO: score every pair with the base model once, before the first step (and remember the
    # numbers across runs, as the evaluation does), instead of a no-grad reference forward in
    # every step. False: TRL's per-step reference.
    precompute_reference: StrictBool = True
    desirable_weight: Number = 1.0  # KTO: loss weight of label=true rows
    undesirable_weight: Number = 1.0  # KTO: loss weight of label=false rows
    warmup_ratio: Number = 0.0
    # Recomputes activations in the backward pass: a few times less activation memory for about
    # a third more compute. None: on only when the run would not fit the free memory without it.
    gradient_checkpointing: OptionalFlag = None
    # Compute precision: "bf16" or "fp32". None: bf16 on a GPU that has it, else fp32. "bf16"
    # on a CPU: autocast where the CPU multiplies bf16 natively (AMX, AVX-512 BF16), else fp32.
    precision: StrictStr | None = None
    seed: Whole = 42
    eval_split: Number = 0.1  # fraction of train rows held out when no eval files are given
    output_dir: StrictStr = "var/training/run"
    device: StrictStr = "auto"
    save_steps: Whole = 50
    logging_steps: Whole = 1
    num_samples: Whole = 3  # sample generations written to metrics.json at the end
    sample_max_new_tokens: Whole = 48
    # Sequences per no-grad forward pass of the evaluation: 4 keeps its peak (TRL's fused head
    # included) under a training step's (16 sequences of 256 tokens took 2.7 GB more on SmolLM2).
    eval_batch_size: Whole = 4

    def __post_init__(self) -> None:
        if self.learning_rate is None and self.method in DEFAULT_LEARNING_RATES:
            self.learning_rate = DEFAULT_LEARNING_RATES[self.method]
        if self.max_length is None:
            self.max_length = DEFAULT_MAX_LENGTHS.get(self.method, 512)

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base_dir: str | Path | None = None) -> JobSpec:
        """Build a spec from plain data; relative file paths are taken from `base_dir` if given."""
        from pydantic import ValidationError

        if not isinstance(data, dict):
            raise SpecError({"spec": "must be a mapping of fields"})
        try:
            spec = _adapter().validate_python(_with_method_defaults(data))
        except ValidationError as error:
            raise SpecError(_spec_errors(error)) from None
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
        if self.precision is not None and self.precision not in PRECISIONS:
            errors["precision"] = (
                f"must be one of {', '.join(PRECISIONS)} (or left out), not {self.precision!r}"
            )
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
        if self.lora.top_layers is not None:
            _positive_int(errors, "lora.top_layers", self.lora.top_layers, "the blocks to adapt")
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
        if self.max_minutes is not None:
            _positive(errors, "max_minutes", self.max_minutes)
        _positive_int(errors, "batch_size", self.batch_size, "the batch size")
        _positive_int(
            errors, "gradient_accumulation", self.gradient_accumulation, "the accumulation"
        )
        if self.micro_batch_size is not None:
            _positive_int(
                errors, "micro_batch_size", self.micro_batch_size, "rows per forward pass"
            )
            if self.micro_batch_size >= 1 and self.batch_size % self.micro_batch_size:
                errors["micro_batch_size"] = (
                    f"must divide batch_size ({self.batch_size}), not {self.micro_batch_size}"
                )
        _positive_int(errors, "eval_batch_size", self.eval_batch_size, "pairs per evaluation pass")
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


# -- shape conversion (pydantic) ---------------------------------------------------------------


def _spec_errors(error: Any) -> dict[str, str]:
    """pydantic's ValidationError as {"lora.r": "one sentence"}, in the spec's own words."""
    errors: dict[str, str] = {}
    for item in error.errors():
        loc = [str(part) for part in item["loc"] if not isinstance(part, int)]
        path = ".".join(loc) or "spec"
        if path in errors:
            continue
        kind, value = item["type"], item.get("input")
        if kind in {"unexpected_keyword_argument", "extra_forbidden"}:
            owner = _owner_of(loc[:-1])
            close = [name for name in owner if name.startswith(loc[-1][:3])]
            hint = f" (did you mean {close[0]}?)" if close else ""
            errors[path] = f"is not a spec field{hint}"
        elif kind == "value_error":
            errors[path] = str(item["ctx"]["error"])
        elif kind in {"dataclass_type", "dict_type", "dataclass_args_type"}:
            errors[path] = "must be a mapping"
        elif kind == "bool_type":
            errors[path] = f"must be true or false, not {value!r}"
        elif kind == "string_type" and loc and loc[0] == "dataset":
            errors[path.rsplit(".", 1)[0] if path.count(".") > 1 else path] = (
                "must be a list of file paths"
            )
        elif kind == "list_type":
            errors[path] = "must be a list of file paths"
        elif kind == "string_type":
            errors[path] = "must be a string"
        else:
            errors[path] = item["msg"][:1].lower() + item["msg"][1:]
    return errors


def _owner_of(loc: list[str]) -> list[str]:
    owner: type = JobSpec
    for part in loc:
        owner = {"dataset": DatasetSpec, "lora": LoraSpec}.get(part, owner)
    return [f.name for f in dataclasses.fields(owner)]


def _with_method_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with its method's METHOD_DEFAULTS filled in where it says nothing (a copy)."""
    method = data.get("method", "sft")
    defaults = METHOD_DEFAULTS.get(method, {}) if isinstance(method, str) else {}
    if not defaults:
        return data
    data = dict(data)
    for path, value in defaults.items():
        owner, _, key = path.rpartition(".")
        if not owner:
            data.setdefault(key, value)
        elif isinstance(data.get(owner, {}), dict):
            data[owner] = {key: value} | dict(data.get(owner) or {})
    return data


@functools.cache
def _adapter() -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(JobSpec)


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
