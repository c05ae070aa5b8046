"""Helpers for the evaluation tests: feedback that is normalized and judged."""

from __future__ import annotations

from typing import Any

import pytest

from apps.feedback.models import Event
from apps.feedback.services.ingest import feedback_ingest
from apps.feedback.services.normalize import feedback_pending_normalize
from apps.quality.models import Verdict


def accept_all(*, trust: float = 1.0) -> None:
    """Give every event without a verdict an accepted one (what the quality worker does for clean
    feedback; the pipeline itself is tested in tests/quality and runs in one test here)."""
    judged = Verdict.objects.filter(is_current=True).values("event_id")
    Verdict.objects.bulk_create(
        Verdict(
            event_id=pk, status="accepted", score=0.0, trust_weight=trust, pipeline_version="test"
        )
        for pk in Event.objects.exclude(pk__in=judged).values_list("pk", flat=True)
    )


@pytest.fixture
def send(src) -> Any:
    """Ingest events (API v1 dicts), normalize them, and return their ids."""

    def run(items: list[dict[str, Any]], *, source: Any = None, accept: bool = True) -> list[int]:
        results = feedback_ingest(source=source or src.source, items=items)
        bad = [r.as_dict() for r in results if r.id is None]
        assert not bad, bad
        feedback_pending_normalize()
        if accept:
            accept_all()
        return [r.id for r in results]

    return run


def pref(i: int, a: str, b: str, choice: Any, **extra: Any) -> dict[str, Any]:
    return {
        "type": "preference",
        "id": f"p-{i}",
        "rater": extra.pop("rater", f"rater-{i % 7}"),
        "messages": [{"role": "user", "content": f"question {i}"}],
        "responses": [
            {"model": a, "content": extra.pop("reply_a", "an answer")},
            {"model": b, "content": extra.pop("reply_b", "another answer")},
        ],
        "choice": choice,
        **extra,
    }
