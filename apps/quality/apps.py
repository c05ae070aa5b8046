from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def _hint_judging(**_: Any) -> None:
    """New events are stored: ask the quality workers to drain what waits for a verdict."""
    from config.celery import send_hint

    send_hint("quality.judge_pending")


def _verdict(event: Any) -> dict[str, Any] | None:
    from apps.quality.selectors import verdict_as_dict

    current = getattr(event, "current_verdicts", None)
    return verdict_as_dict(current[0] if current else None)


def _backlog() -> tuple[int, float | None]:
    from apps.quality.backlog import judging_backlog

    return judging_backlog()


def _detail_prefetches() -> list[Any]:
    from apps.quality.selectors import current_verdicts_prefetch

    return [current_verdicts_prefetch()]


class QualityConfig(AppConfig):
    name = "apps.quality"
    label = "quality"
    verbose_name = "Quality"

    def ready(self) -> None:
        # Quality builds on feedback: feedback tells it about new events and asks it for
        # verdicts through these, never by importing quality (apps/feedback/signals.py).
        from apps.feedback import signals  # lazy: apps.py loads before models

        signals.events_stored.connect(_hint_judging, dispatch_uid="quality.hint_judging")
        signals.event_verdict.provide(_verdict)
        signals.event_detail_prefetches.provide(_detail_prefetches)
        signals.pipeline_backlog.provide(_backlog)
