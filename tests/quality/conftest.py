"""Fixtures of the quality tests: real texts (fixture slices, and the whole corpora from
../shared/data where present), events stored through the real ingest service, and a judge."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from apps.feedback.models import Event
from apps.feedback.services.ingest import feedback_ingest
from apps.quality.filters.base import Batch, Context, EventView
from apps.quality.history import NoHistory
from apps.quality.pipeline import make_view
from apps.quality.services import quality_events_judge
from tests.conftest import FIXTURES, SHARED_DATA

QUALITY_FIXTURES = FIXTURES / "quality"
SMS_CORPUS = SHARED_DATA / "spam" / "sms_spam_collection.tsv"
HH_SAMPLE = SHARED_DATA / "formats" / "hh_rlhf_harmless_sample.jsonl"
_TURN = re.compile(r"\n\n(Human|Assistant): ")


def sms_rows(path: Path = QUALITY_FIXTURES / "sms_slice.tsv") -> list[tuple[str, str]]:
    """(label, text) rows of an SMS Spam Collection file."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        label, text = line.split("\t", 1)
        rows.append((label, text))
    return rows


def hh_turns(path: Path = QUALITY_FIXTURES / "hh_slice.jsonl") -> list[tuple[str, str]]:
    """(speaker, text) of every turn of the HH-RLHF records in PATH: real prompts and replies."""
    turns = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        for key in ("chosen", "rejected"):
            parts = _TURN.split(record[key])
            turns.extend(
                (speaker, body.strip())
                for speaker, body in zip(parts[1::2], parts[2::2], strict=False)
                if body.strip()
            )
    return list(dict.fromkeys(turns))


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data folder beside the checkout)")
    return path


def view(payload: dict[str, Any], **fields: Any) -> EventView:
    """An event as the filters see it, without a database."""
    fields.setdefault("received_at", timezone.now())
    return make_view(
        id=fields.pop("id", 1), source_id=fields.pop("source_id", 1), payload=payload, **fields
    )


def run_filter(
    module: Any, payloads: list[dict[str, Any]], state: dict[str, Any] | None = None
) -> list[Any]:
    """FILTER of MODULE on each payload (content filters: no history)."""
    views = [view(p, id=i + 1) for i, p in enumerate(payloads)]
    from apps.quality.pipeline import fingerprint

    fingerprint(views)
    batch = Batch(events=views, history=NoHistory(), state=dict(state or {}))
    module.FILTER.prepare(batch)
    return [module.FILTER.check(Context(v, batch)) for v in views]


def comment_event(text: str, **overrides: Any) -> dict[str, Any]:
    event = {
        "type": "rating",
        "rating": -1,
        "messages": [{"role": "user", "content": "Explain TCP handshakes."}],
        "response": "SYN, SYN-ACK, ACK.",
        "comment": text,
    }
    event.update(overrides)
    return event


@pytest.fixture
def store(src) -> Callable[..., list[int]]:
    """Send ITEMS through the real ingest service (as the API does) and return the new event ids."""

    def send(
        items: list[dict[str, Any]], *, source=None, client_ip: str = "203.0.113.9"
    ) -> list[int]:
        results = feedback_ingest(source=source or src.source, items=items, client_ip=client_ip)
        bad = [r.as_dict() for r in results if r.id is None]
        assert not bad, bad
        return [r.id for r in results]

    return send


_counter = {"n": 0}


def uid(prefix: str = "e") -> str:
    _counter["n"] += 1
    return f"{prefix}-{_counter['n']}"


@pytest.fixture
def judge() -> Callable[..., Any]:
    def run(ids: list[int], **options: Any) -> Any:
        return quality_events_judge(event_ids=ids, **options)

    return run


def current(event_id: int) -> Any:
    from apps.quality.models import Verdict

    return Verdict.objects.get(event_id=event_id, is_current=True)


def at(minutes: float, base: datetime | None = None) -> str:
    moment = (base or datetime(2026, 1, 5, 12, 0, tzinfo=UTC)) + timedelta(minutes=minutes)
    return moment.isoformat()


def events_of(ids: list[int]) -> list[Event]:
    return list(Event.objects.filter(id__in=ids).order_by("id"))
