"""The one shape every filter has, and what a filter is given.

A filter module defines a subclass of `Filter` with a `name`, a `version` (bump it whenever the
filter would judge some event differently) and `check(ctx) -> FilterResult`, and exposes an
instance as `FILTER`. Filters that need history or batch-wide work (a database look-up, one
classifier call for many texts) do it once per batch in `prepare(batch)` and leave the results in
`batch.state[self.name]`. Adding a filter means copying a sibling and listing it in `FILTER_MODULES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol

from apps.quality.text import EventTexts

Action = Literal["pass", "quarantine", "reject"]
PASS: Action = "pass"  # noqa: S105 (an action, not a password)
QUARANTINE: Action = "quarantine"
REJECT: Action = "reject"
SEVERITY = {PASS: 0, QUARANTINE: 1, REJECT: 2}


@dataclass(frozen=True)
class Reason:
    code: str  # machine-readable, `<filter>.<what>`
    message: str  # one human sentence


@dataclass
class FilterResult:
    action: Action = PASS
    score: float = 0.0  # 0 clean … 1 certainly spam or noise
    reasons: list[Reason] = field(default_factory=list)
    trust: float = 1.0  # multiplies the event's trust weight
    followups: list[int] = field(default_factory=list)  # other events to judge again now

    @classmethod
    def clean(cls, *, trust: float = 1.0) -> FilterResult:
        return cls(trust=trust)


@dataclass
class EventView:
    """One event as the filters see it: stored, or made up by `spam_eval`."""

    id: int
    source_id: int
    type: str
    payload: dict[str, Any]
    rater_hash: str
    ip_hash: str
    status: str  # the ingest status: quarantined when the source holds everything for review
    at: datetime  # when the user gave it (client time, never later than receipt)
    received_at: datetime
    texts: EventTexts
    normalized: str = ""  # the rater's text, normalized (empty when there is none)
    simhash: int | None = None
    exact: int | None = None
    votes: list[tuple[str, str, str]] = field(
        default_factory=list
    )  # (model_lo, model_hi, lo|hi|tie)
    # What of a stored event no reader can carry (apps.feedback.selectors.unreadable_values):
    # only rows stored before validation bounded timestamps and numbers have any.
    unreadable: list[str] = field(default_factory=list)

    @property
    def is_vote(self) -> bool:
        return self.type in ("preference", "ranking")


class History(Protocol):
    """What history-aware filters may ask about events judged before (see `apps.quality.history`)."""

    def window_counts(
        self,
        dim: str,
        probes: list[tuple[Any, datetime, datetime]],
        exclude: set[int],
        *,
        votes: bool = False,
    ) -> list[int]: ...

    def near_texts(
        self, bands: list[set[int]], lo: datetime, hi: datetime, exclude: set[int]
    ) -> list[dict[str, Any]]: ...

    def consensus(
        self, pairs: set[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, int, int]]: ...

    def rater_fisher(
        self, raters: set[str], before_id: int, exclude: set[int]
    ) -> dict[str, tuple[float, int]]: ...

    def reputations(self, raters: set[str]) -> dict[str, dict[str, Any]]: ...


@dataclass
class Batch:
    events: list[EventView]
    history: History
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def ids(self) -> set[int]:
        return {event.id for event in self.events}


@dataclass
class Context:
    event: EventView
    batch: Batch

    @property
    def state(self) -> dict[str, Any]:
        return self.batch.state


class Filter(ABC):
    name: ClassVar[str]
    version: ClassVar[str]
    # Content filters judge an event from its own payload alone; the others read history.
    uses_history: ClassVar[bool] = False

    def current_version(self, batch: Batch | None = None) -> str:
        """The version recorded on verdicts (the classifier adds the version of its model)."""
        return self.version

    def prepare(self, batch: Batch) -> None:  # noqa: B027 (optional hook, not abstract)
        """Batch-wide work before `check` is called for each event; by default none."""

    @abstractmethod
    def check(self, ctx: Context) -> FilterResult:
        """Judge one event: pass, or flag it with reasons and a score."""
