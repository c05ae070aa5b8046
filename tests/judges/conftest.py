"""Judges fixtures: the tiny random Llama (built once per session), DPO-shaped rows with a
learnable preference, and a reward model trained on them once per session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

QUESTIONS = [
    "Is the sky blue?",
    "Is fire cold?",
    "Do fish swim?",
    "Is water wet?",
    "Can dogs fly?",
    "Is snow hot?",
    "Do birds sing?",
    "Is the sea deep?",
]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def yes_over_no(n: int) -> list[dict[str, Any]]:
    """A preference the tiny model can learn: the reply "yes" is always chosen over "no"."""
    return [{"prompt": QUESTIONS[i % 8], "chosen": "yes", "rejected": "no"} for i in range(n)]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    from trainer.testing import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-llama") / "model")


@pytest.fixture(scope="session")
def rm_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("rm-data")
    return {
        "train": write_jsonl(folder / "train.jsonl", yes_over_no(48)),
        "test": write_jsonl(folder / "test.jsonl", yes_over_no(16)),
    }


def rm_spec_data(tiny_model: str, rm_files: dict[str, str], output_dir: Path) -> dict[str, Any]:
    return {
        "method": "rm",
        "base_model": tiny_model,
        "dataset": {"train": [rm_files["train"]], "eval": [rm_files["test"]]},
        "max_steps": 12,
        "batch_size": 8,
        "max_length": 64,
        "learning_rate": 5e-3,
        "save_steps": 6,
        "output_dir": str(output_dir),
    }


@pytest.fixture(scope="session")
def rm_run(tiny_model: str, rm_files: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    """A reward model trained once on the tiny model (a few seconds)."""
    from trainer import JobSpec, run_job

    folder = tmp_path_factory.mktemp("rm-run")
    spec = JobSpec.from_dict(rm_spec_data(tiny_model, rm_files, folder / "out"))
    return run_job(spec)


@pytest.fixture(autouse=True)
def _artifacts_and_builtin_engine(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    settings.ARTIFACT_ROOT = tmp_path_factory.mktemp("artifacts")
    settings.VLLM_URL = ""
    settings.ARTIFACT_S3_URL = ""
    settings.SERVING_UPSTREAM_URL = ""
    settings.SERVING_DEVICE = "cpu"


@pytest.fixture
def admin_client(db: Any) -> Any:
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    client.force_login(User.objects.create_superuser("boss", password="pw-boss"))
    return client


@pytest.fixture
def reward_checkpoint(db: Any, rm_run: Any, tiny_model: str) -> Any:
    """The session's tiny reward model, registered as a checkpoint of kind reward."""
    from apps.registry.models import BaseModel, Checkpoint

    base, _ = BaseModel.objects.get_or_create(name="tiny", defaults={"model_id": tiny_model})
    return Checkpoint.objects.create(
        name="tiny-rm",
        kind="reward",
        base_model=base,
        method="rm",
        local_path=str(rm_run.adapter_dir),
    )
