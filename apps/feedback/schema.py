"""The feedback event schema (API v1), as pydantic models: one place that validates an event and
names every bad field. pydantic's compiled core keeps validation off the ingest hot path's bill.

Shapes (see DESIGN.md): rating, preference, ranking, edit. Messages use the OpenAI chat format."""

from __future__ import annotations

import math
import unicodedata
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

MAX_TEXT = 100_000  # characters in one message or response
MAX_SHORT = 200  # ids, model names, raters
MAX_COMMENT = 10_000
MAX_MESSAGES = 500
MAX_RESPONSES = 20
MAX_TAGS = 50
MAX_METADATA_BYTES = 16_384
MAX_METADATA_DEPTH = 8
# Any other field (message extras such as tool_calls, content parts) may nest this deep; deeper
# junk is refused before it reaches the redactor or the JSON encoder, which both recurse.
MAX_EVENT_DEPTH = 32

# Every number anywhere in an event must survive PostgreSQL jsonb (which prints 1e20 back as the
# integer 100000000000000000000) and orjson (64-bit integers at most) on every later read: a signed
# 64-bit integer, or a float smaller than 2**63 in magnitude. Larger values are refused (400), not
# rounded or stringified behind the client's back: send them as strings. See docs/api.md.
NUMBER_LIMIT = 2**63

Short = Annotated[str, Field(min_length=1, max_length=MAX_SHORT)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Tag = Annotated[str, Field(min_length=1, max_length=100)]


class FieldError(ValueError):
    """A cross-field check that belongs to one field: reported under FIELD, not the event."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=False)


class ContentPart(BaseModel):
    """One part of a multi-part OpenAI message (`{"type": "text", "text": …}`, images…)."""

    model_config = ConfigDict(extra="allow", strict=True)
    type: Annotated[str, Field(min_length=1, max_length=50)]
    text: Text | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Text | Annotated[list[ContentPart], Field(max_length=100)] | None = None
    name: Short | None = None


_INTERACTION = (
    "The id of the gateway's answer (`id` of /v1/chat/completions). The event's model and "
    "checkpoint are then taken from that answer, whatever the event says; an unknown id is refused."
)


class Response(_Strict):
    content: Text
    model: Short | None = None
    checkpoint: Short | None = None
    interaction_id: Short | None = Field(None, description=_INTERACTION)


class _EventBase(_Strict):
    id: Short | None = Field(
        None, description="Your event id; a retry with the same id is a no-op."
    )
    rater: Short | None = Field(
        None, description="Your end user's id; stored only as a keyed hash."
    )
    supersedes: Short | None = Field(
        None,
        description="The `id` of an earlier event of this source, by the same rater, that this "
        "one revises (a changed rating). Datasets and leaderboards count only the latest "
        "revision; an event can be revised once (revise the latest).",
    )
    model: Short | None = None
    checkpoint: Short | None = Field(
        None, description="Registry id of the checkpoint that answered."
    )
    interaction_id: Short | None = Field(None, description=_INTERACTION)
    messages: Annotated[list[Message], Field(min_length=1, max_length=MAX_MESSAGES)]
    # Factories, not `= []` / `= {}`: pydantic deep-copies a mutable default for every event.
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] = Field(
        default_factory=list, json_schema_extra={"default": []}
    )
    reason: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    comment: Annotated[str, Field(max_length=MAX_COMMENT)] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict, json_schema_extra={"default": {}})
    consent: bool | None = Field(
        None, description="May this feedback train models? Default: the source's."
    )
    licence: Annotated[str, Field(max_length=100)] | None = None
    timestamp: datetime | None = Field(
        None, description="When the user gave the feedback (ISO 8601)."
    )

    @field_validator("timestamp", mode="before")
    @classmethod
    def _timestamp_is_iso(cls, value: Any) -> Any:
        if isinstance(value, str):
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        if value is not None:
            raise ValueError("must be an ISO 8601 date-time string")
        return value

    @field_validator("timestamp")
    @classmethod
    def _timestamp_has_zone(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return value
        if value.tzinfo is None:
            raise ValueError("must carry a time zone, e.g. 2026-01-31T12:00:00Z")
        earliest, latest = timestamp_range()
        try:
            inside = earliest <= value <= latest
        except OverflowError:  # 0001-01-01T00:00+14:00 lies before datetime.min in UTC
            inside = False
        if not inside:
            raise ValueError(
                f"must lie between {earliest.isoformat()} and {latest.isoformat()} "
                "(now + FEEDBACK_TIMESTAMP_MAX_AHEAD_DAYS)"
            )
        return value

    @field_validator("id", "rater", "interaction_id", "supersedes")
    @classmethod
    def _ids_are_nfc(cls, value: str | None) -> str | None:
        # One id, however the client's keyboard composed it: NFC and NFD of "café" are one event.
        if value is None or value.isascii():
            return value
        return unicodedata.normalize("NFC", value)

    @model_validator(mode="after")
    def _does_not_supersede_itself(self) -> Any:
        if self.supersedes is not None and self.supersedes == self.id:
            raise FieldError("supersedes", "is this event's own id")
        return self

    @field_validator("metadata")
    @classmethod
    def _metadata_is_small(cls, value: dict[str, Any]) -> dict[str, Any]:
        import orjson

        if _deeper_than(value, MAX_METADATA_DEPTH):
            raise ValueError(f"is nested deeper than {MAX_METADATA_DEPTH} levels")
        try:
            size = len(orjson.dumps(value))
        except TypeError as exc:  # integers beyond 64 bits
            raise ValueError(f"holds a value JSON cannot carry: {exc}") from exc
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"is {size} bytes of JSON; at most {MAX_METADATA_BYTES}")
        return value


_earliest_cache: dict[str, datetime] = {}


def timestamp_range() -> tuple[datetime, datetime]:
    """The event timestamps accepted now: FEEDBACK_TIMESTAMP_MIN (a date or an ISO date-time,
    UTC unless it says) to now + FEEDBACK_TIMESTAMP_MAX_AHEAD_DAYS."""
    from django.conf import settings

    setting = settings.FEEDBACK_TIMESTAMP_MIN
    earliest = _earliest_cache.get(setting)
    if earliest is None:
        parsed = (
            datetime.fromisoformat(setting)
            if "T" in setting
            else datetime.combine(date.fromisoformat(setting), time.min)
        )
        earliest = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        _earliest_cache[setting] = earliest
    latest = datetime.now(UTC) + timedelta(days=settings.FEEDBACK_TIMESTAMP_MAX_AHEAD_DAYS)
    return earliest, latest


def _bad_numbers(value: Any, path: str) -> dict[str, list[str]]:
    """Field errors for each number under VALUE that a later read could not carry (see
    NUMBER_LIMIT). Iterative: the value may nest as deep as MAX_EVENT_DEPTH."""
    errors: dict[str, list[str]] = {}
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, item in items:
            kind = type(item)
            if kind is str or kind is bool or item is None:
                continue
            if kind is dict or kind is list:
                stack.append((item, f"{where}.{key}"))
            elif kind is int or kind is float:
                if (
                    -NUMBER_LIMIT <= item < NUMBER_LIMIT
                    if kind is int
                    else math.isfinite(item) and abs(item) < NUMBER_LIMIT
                ):
                    continue
                errors[f"{where}.{key}"] = [
                    f"is {item!r}: numbers must lie within ±2**63 (64 bits) so that every reader "
                    "can carry them; send a larger value as a string"
                ]
    return errors


def _depth(value: Any, level: int = 1, limit: int = MAX_METADATA_DEPTH) -> int:
    """How deep VALUE nests, counting stops once past LIMIT (so junk cannot exhaust the stack)."""
    if level > limit + 1:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1, limit) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1, limit) for v in value), default=level)
    return level


def _deeper_than(value: Any, limit: int) -> bool:
    """`_depth(value, 1, limit) > limit`, without recursion or visiting scalars one call each:
    the check runs on every field of every event. VALUE counts as level 1, and a container at
    level L puts its items, scalars too, at level L + 1."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    if not stack:
        return limit < 1
    while stack:
        node, level = stack.pop()
        items = node.values() if isinstance(node, dict) else node
        if level >= limit:
            if level > limit or items:
                return True
            continue
        for item in items:
            if isinstance(item, dict | list):
                stack.append((item, level + 1))
    return False


def _no_booleans(value: Any) -> Any:
    # JSON true is not the number 1, and 1.0 is not a choice between 1 and -1: a client sending
    # either has misread the schema (and the literal checks would quietly take them).
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    if isinstance(value, float):
        raise ValueError("must be a whole number, such as 1 (not 1.0)")
    return value


class RatingEvent(_EventBase):
    type: Literal["rating"]
    response: Text
    rating: Literal[1, -1] | None = Field(None, description="Thumbs: 1 up, -1 down.")
    score: Annotated[int, Field(ge=1, le=10)] | None = Field(None, description="A 1-10 scale.")

    _rating_not_bool = field_validator("rating", "score", mode="before")(_no_booleans)

    @model_validator(mode="after")
    def _has_a_judgement(self) -> RatingEvent:
        if self.rating is None and self.score is None:
            raise FieldError("rating", "a rating event needs 'rating' (1 or -1) or 'score' (1-10)")
        return self


class PreferenceEvent(_EventBase):
    type: Literal["preference"]
    responses: Annotated[list[Response], Field(min_length=2, max_length=2)]
    choice: Literal[0, 1, "tie", "both_bad"]

    _choice_not_bool = field_validator("choice", mode="before")(_no_booleans)


class RankingEvent(_EventBase):
    type: Literal["ranking"]
    responses: Annotated[list[Response], Field(min_length=2, max_length=MAX_RESPONSES)]
    ranking: Annotated[list[int], Field(min_length=2, max_length=MAX_RESPONSES)] = Field(
        description="Indices into responses, best first."
    )

    @model_validator(mode="after")
    def _ranking_is_a_permutation(self) -> RankingEvent:
        if sorted(self.ranking) != list(range(len(self.responses))):
            raise FieldError(
                "ranking",
                f"must list each index of 'responses' (0..{len(self.responses) - 1}) exactly once",
            )
        return self


class EditEvent(_EventBase):
    type: Literal["edit"]
    response: Text
    edited: Text

    @model_validator(mode="after")
    def _edit_changes_something(self) -> EditEvent:
        if self.edited == self.response:
            raise FieldError("edited", "is the same as 'response'")
        return self


Event = Annotated[
    RatingEvent | PreferenceEvent | RankingEvent | EditEvent, Field(discriminator="type")
]
EVENT_TYPES = ("rating", "preference", "ranking", "edit")
_event_adapter: TypeAdapter[Any] = TypeAdapter(Event)


# Lists whose numbers the models themselves bound (indices into `responses`).
_BOUNDED_LISTS = frozenset({"ranking"})
_TYPE_NAMES = {"str", "int", "bool", "none", "dict", "list", "float"}


def _loc(loc: tuple[Any, ...]) -> str:
    """A dotted field path. pydantic puts the union's tag ('rating') and the names of union
    members ('constrained-str', 'list[ContentPart]') into locations; field names have neither."""
    parts = loc[1:] if loc and loc[0] in EVENT_TYPES else loc
    kept = [
        str(part)
        for part in parts
        if not (isinstance(part, str) and ("-" in part or "[" in part or part in _TYPE_NAMES))
    ]
    return ".".join(kept) or "non_field_errors"


def validate_event(
    data: Any,
) -> tuple[RatingEvent | PreferenceEvent | RankingEvent | EditEvent | None, dict[str, list[str]]]:
    """Validate one raw event; return it, or field errors keyed by dotted path."""
    if not isinstance(data, dict):
        return None, {"non_field_errors": ["each event must be a JSON object"]}
    kind = data.get("type")
    if kind not in EVENT_TYPES:
        return None, {"type": [f"must be one of {', '.join(EVENT_TYPES)}"]}
    too_deep = [
        name
        for name, value in data.items()
        if name != "metadata"
        and isinstance(value, list | dict)
        and _deeper_than(value, MAX_EVENT_DEPTH)
    ]
    if too_deep:
        return None, {
            name: [f"is nested deeper than {MAX_EVENT_DEPTH} levels"] for name in too_deep
        }
    numbers = {}
    for name, value in data.items():
        if type(value) is dict or type(value) is list:
            if name not in _BOUNDED_LISTS and (found := _bad_numbers(value, name)):
                numbers.update(found)
    if numbers:
        return None, numbers
    try:
        return _event_adapter.validate_python(data), {}
    except ValidationError as exc:
        fields: dict[str, list[str]] = {}
        for error in exc.errors(include_url=False, include_input=False):
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "is not a field of this event type (put extra data in 'metadata')"
            cause = error.get("ctx", {}).get("error")
            path = cause.field if isinstance(cause, FieldError) else _loc(tuple(error["loc"]))
            messages = fields.setdefault(path, [])
            if message not in messages:
                messages.append(message)
        return None, fields
