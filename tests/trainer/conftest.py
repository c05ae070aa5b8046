"""Trainer fixtures: a tiny random Llama built once per session and small JSONL files in TRL's
formats. Plain Python: no database, no Django objects."""

from __future__ import annotations

import json
from collections.abc import Callable
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


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    from trainer.testing import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-llama") / "model")


@pytest.fixture(scope="session")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One file per method: a learnable toy preference (always "yes" over "no")."""
    folder = tmp_path_factory.mktemp("data")
    n = 40
    return {
        "sft": write_jsonl(
            folder / "sft.jsonl",
            [
                {
                    "messages": [
                        {"role": "user", "content": QUESTIONS[i % 8]},
                        {"role": "assistant", "content": "yes"},
                    ]
                }
                for i in range(n)
            ],
        ),
        "dpo": write_jsonl(
            folder / "dpo.jsonl",
            [{"prompt": QUESTIONS[i % 8], "chosen": "yes", "rejected": "no"} for i in range(n)],
        ),
        "kto": write_jsonl(
            folder / "kto.jsonl",
            [
                {
                    "prompt": QUESTIONS[i % 8],
                    "completion": "yes" if i % 2 else "no",
                    "label": bool(i % 2),
                }
                for i in range(n)
            ],
        ),
    }


@pytest.fixture
def make_spec(tiny_model: str, data_files: dict[str, str], tmp_path: Path) -> Callable[..., Any]:
    from trainer import JobSpec

    def make(method: str = "sft", **fields: Any) -> JobSpec:
        data: dict[str, Any] = {
            "method": method,
            "base_model": tiny_model,
            "dataset": {"train": [data_files.get(method, data_files["sft"])]},
            "max_steps": 4,
            "batch_size": 4,
            "max_length": 64,
            "learning_rate": 1e-3,
            "save_steps": 2,
            "eval_split": 0.2,
            "num_samples": 2,
            "sample_max_new_tokens": 8,
            "output_dir": str(tmp_path / f"run-{method}"),
        }
        data.update(fields)
        return JobSpec.from_dict(data)

    return make
