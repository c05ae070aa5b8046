"""Shared fixtures. Tests run on whatever DATABASE_URL says (PostgreSQL in CI) or on SQLite.

Celery runs tasks eagerly here unless a test starts a real worker (tests/core/test_worker.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from apps.sources.models import Source
from apps.sources.services import source_create

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True, scope="session")
def _base_logps_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Training runs remember base log-probs in a folder of the test session, not in ~/.cache
    (a worker started by a test inherits it)."""
    import os

    os.environ["SINKHOLE_TRAIN_LOGPS_CACHE"] = str(tmp_path_factory.mktemp("base-logps"))
    yield


@pytest.fixture(autouse=True)
def _eager_celery_and_fresh_limits() -> Any:
    from apps.quality import backlog
    from config.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    cache.clear()
    backlog._samples.clear()  # admission control's per-process view of the workers' speed
    yield
    cache.clear()


@dataclass
class SourceWithKeys:
    source: Source
    secret: str
    publishable: str


@pytest.fixture
def make_source(db: Any):
    def make(name: str = "test-app", **fields: Any) -> SourceWithKeys:
        source, secret, publishable = source_create(
            name=name, allowed_origins=fields.pop("allowed_origins", [])
        )
        for attr, value in fields.items():
            setattr(source, attr, value)
        if fields:
            source.full_clean()
            source.save()
        return SourceWithKeys(source, secret.raw, publishable.raw)

    return make


@pytest.fixture
def src(make_source) -> SourceWithKeys:
    return make_source("test-app")


class Api:
    """A test client that speaks the ingest API's JSON with a key."""

    def __init__(self, client: Client, key: str | None) -> None:
        self.client, self.key = client, key

    def _headers(self, key: str | None, extra: dict[str, str]) -> dict[str, str]:
        headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in extra.items()}
        if key or self.key:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {key or self.key}"
        return headers

    def post(
        self,
        data: Any,
        *,
        key: str | None = None,
        raw: bytes | None = None,
        path: str = "/api/v1/feedback",
        **headers: str,
    ):
        body = raw if raw is not None else json.dumps(data)
        return self.client.post(
            path, body, content_type="application/json", **self._headers(key, headers)
        )

    def get(self, path: str, *, key: str | None = None, **params: Any):
        return self.client.get(path, params, **self._headers(key, {}))


@pytest.fixture
def api(src: SourceWithKeys, client: Client) -> Api:
    return Api(client, src.secret)


def rating(**overrides: Any) -> dict[str, Any]:
    event = {
        "type": "rating",
        "id": "evt-1",
        "rater": "user-1",
        "model": "llama3.1:8b",
        "messages": [{"role": "user", "content": "What is the capital of Australia?"}],
        "response": "Canberra.",
        "rating": 1,
    }
    event.update(overrides)
    return event


def preference(**overrides: Any) -> dict[str, Any]:
    event = {
        "type": "preference",
        "id": "evt-p",
        "rater": "user-1",
        "messages": [{"role": "user", "content": "Say hi"}],
        "responses": [{"model": "a", "content": "Hi!"}, {"model": "b", "content": "Hello."}],
        "choice": 0,
    }
    event.update(overrides)
    return event
