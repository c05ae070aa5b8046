"""Fixtures of the datasets tests: events stored through the real ingest service, normalized and
judged by the real quality pipeline, so a build sees what it sees in production."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from apps.feedback.services.ingest import feedback_ingest
from apps.feedback.services.normalize import feedback_events_normalize
from apps.quality.services import quality_events_judge
from tests.frontend.conftest import browser  # noqa: F401 (the Chromium fixture, shared)

_ids = itertools.count(1)


def uid(prefix: str = "d") -> str:
    return f"{prefix}-{next(_ids)}"


@pytest.fixture(autouse=True)
def _artifacts(tmp_path: Path, settings: Any) -> None:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture
def feed(src) -> Callable[..., list[int]]:
    """Ingest ITEMS (ids made up where missing), derive their rows and judge them."""

    def send(items: list[dict[str, Any]], *, source=None) -> list[int]:
        for item in items:
            item.setdefault("id", uid())
        results = feedback_ingest(source=source or src.source, items=items, client_ip="203.0.113.7")
        ids = [r.id for r in results]
        assert None not in ids, [r.as_dict() for r in results]
        feedback_events_normalize(event_ids=ids)
        quality_events_judge(event_ids=ids)
        return ids

    return send


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def thumbs(prompt: str, reply: str, value: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "rating",
        "rater": extra.pop("rater", "r-1"),
        "model": extra.pop("model", "m1"),
        "messages": ask(prompt),
        "response": reply,
        "rating": value,
        **extra,
    }


def pref(prompt: str, a: str, b: str, choice: Any, **extra: Any) -> dict[str, Any]:
    return {
        "type": "preference",
        "rater": extra.pop("rater", "r-2"),
        "messages": extra.pop("messages", ask(prompt)),
        "responses": [{"model": "ma", "content": a}, {"model": "mb", "content": b}],
        "choice": choice,
        **extra,
    }


def rank(prompt: str, replies: list[str], ranking: list[int], **extra: Any) -> dict[str, Any]:
    return {
        "type": "ranking",
        "rater": extra.pop("rater", "r-3"),
        "messages": ask(prompt),
        "responses": [{"model": f"m{i}", "content": r} for i, r in enumerate(replies)],
        "ranking": ranking,
        **extra,
    }


def edit(prompt: str, reply: str, edited: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "edit",
        "rater": extra.pop("rater", "r-4"),
        "model": "m1",
        "messages": ask(prompt),
        "response": reply,
        "edited": edited,
        **extra,
    }


def _user(name: str, role: str | None):
    user = get_user_model().objects.create_user(name, password="pw-" + name * 3)
    if role:
        group, _ = Group.objects.get_or_create(name=role)
        user.groups.add(group)
    return user


@pytest.fixture
def curator(db: Any):
    return _user("cura", "curator")


@pytest.fixture
def viewer(db: Any):
    return _user("vic", "viewer")
