"""What the feedback app tells the apps above it, and what it asks them, without importing them.

Feedback is the lowest app that holds events (DESIGN: arrows follow the data): quality, serving
and datasets build on it. Where feedback must reach up, it sends a Django signal or calls a hook
that the upper app connects from its `AppConfig.ready()`:

- `events_stored` (signal): new events are committed to the raw log. Sent after the commit, with
  `source_id` and `event_ids`. Quality connects it to send its judging hint. A receiver must be
  cheap and must not raise: the events are stored whatever it does, and the reconciler redoes
  any derived work that a lost hint leaves undone.
- `rater_forgotten` (signal): a rater was tombstoned (`rater_forget`). Sent inside its
  transaction with `rater_hashes` (sorted); a receiver returns the ids of the dataset versions it
  flagged (`forgotten_raters`), which the result reports as `flagged_versions`. Datasets connects it.
- `served_answers` (hook): interaction id → (model, checkpoint) of the gateway answers some
  events quote. Serving provides it; without serving every quoted id is unknown.
- `event_verdict` (hook): an event's current verdict as the API shows it (None until judged).
  Quality provides it.
- `event_detail_prefetches` (hook): the `Prefetch`es an event's detail needs from the apps above
  (its current verdict, which `event_verdict` then reads). Quality provides it.
- `pipeline_backlog` (hook): how many stored events still wait for derived work, and how fast
  the workers are clearing them (events/s; None while not known). Ingest's admission control
  reads it to turn batches away while the workers are too far behind. Quality provides it;
  without quality nothing waits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from django.dispatch import Signal

logger = logging.getLogger(__name__)

events_stored = Signal()
rater_forgotten = Signal()

F = TypeVar("F", bound=Callable[..., Any])


class Hook(Generic[F]):
    """One function an upper app provides for feedback to call; `default` until it does."""

    def __init__(self, name: str, default: F) -> None:
        self.name = name
        self._default = default
        self._provider: F | None = None

    def provide(self, function: F) -> F:
        """Register FUNCTION (an upper app's `ready()` calls this); returns it unchanged."""
        self._provider = function
        return function

    @property
    def call(self) -> F:
        return self._provider or self._default


served_answers: Hook[Callable[[list[str]], dict[str, tuple[str, str]]]] = Hook(
    "served_answers", lambda interaction_ids: {}
)
event_verdict: Hook[Callable[[Any], dict[str, Any] | None]] = Hook(
    "event_verdict", lambda event: None
)
event_detail_prefetches: Hook[Callable[[], list[Any]]] = Hook("event_detail_prefetches", lambda: [])
pipeline_backlog: Hook[Callable[[], tuple[int, float | None]]] = Hook(
    "pipeline_backlog", lambda: (0, None)
)


def send_events_stored(*, source_id: int, event_ids: list[int]) -> None:
    """Tell the upper apps about new events; a failing receiver is logged, never raised: the
    events are already stored, and the reconciler catches up on whatever it left undone."""
    for receiver, result in events_stored.send_robust(
        sender=None, source_id=source_id, event_ids=event_ids
    ):
        if isinstance(result, Exception):
            logger.warning(
                "events_stored receiver failed; the reconciler will catch up",
                extra={
                    "receiver": getattr(receiver, "__qualname__", str(receiver)),
                    "error": str(result),
                },
            )
