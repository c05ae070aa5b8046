from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.registry.factories import FakeVllm


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    settings.ARTIFACT_ROOT = tmp_path_factory.mktemp("artifacts")
    settings.VLLM_URL = ""
    settings.ARTIFACT_S3_URL = ""


@pytest.fixture
def fake_vllm(settings: Any) -> Iterator[FakeVllm]:
    server = FakeVllm()
    settings.VLLM_URL = server.url
    yield server
    server.close()
