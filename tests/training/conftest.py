from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import chromium
from tests.core.conftest import live_broker  # noqa: F401 - the real-worker test uses it
from tests.registry.factories import FakeVllm


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    from trainer.testing import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.VLLM_URL = ""
    settings.ARTIFACT_S3_URL = ""
    monkeypatch.setenv("ARTIFACT_ROOT", str(tmp_path / "artifacts"))  # for a worker process
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def fake_vllm(settings: Any) -> Iterator[FakeVllm]:
    server = FakeVllm()
    settings.VLLM_URL = server.url
    yield server
    server.close()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched
