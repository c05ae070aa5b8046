"""Building feedback events (API v1) and the cheap checks made before one is queued.

The server validates every event in full; these checks catch, at the call site and at once, the
mistakes that would otherwise surface later as a delivery error on the background thread: an
impossible rating, a ranking that is not a permutation, a value JSON cannot carry."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Literal, TypeAlias

EVENT_TYPES = ("rating", "preference", "ranking", "edit")
CHOICES = (0, 1, "tie", "both_bad")
MAX_SHORT = 200
MAX_TEXT = 100_000
MAX_COMMENT = 10_000
MAX_MESSAGES = 500
MAX_RESPONSES = 20
MAX_TAGS = 50
# The server refuses request bodies over 5 MB; one event alone must fit in a batch of one.
MAX_EVENT_BYTES = 5 * 1024 * 1024 - 2

Messages: TypeAlias = str | Sequence[Mapping[str, Any]]
"""OpenAI chat messages, or a plain string as shorthand for one user message."""
Responses: TypeAlias = Sequence[str | Mapping[str, Any]]
"""Each response is its text, or `{"content": ..., "model"?: ..., "checkpoint"?: ...}`."""
Choice: TypeAlias = Literal[0, 1, "tie", "both_bad"]


def new_event_id() -> str:
    """A fresh client-side event id: the server stores a retried event with the same id once."""
    return str(uuid.uuid4())


def _short(name: str, value: object, *, required: bool = False) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value or len(value) > MAX_SHORT:
        raise ValueError(f"{name} must be a non-empty string of at most {MAX_SHORT} characters")


def _text(name: str, value: object, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    if len(value) > limit:
        raise ValueError(f"{name} is {len(value)} characters long; at most {limit}")
    return value


def _int(name: str, value: object) -> int:
    # JSON true is not the number 1; the server refuses it, so refuse it here.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    return value


def _messages(value: Messages) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, Sequence) or not value:
        raise ValueError("messages must be a non-empty list of chat messages (or one string)")
    if len(value) > MAX_MESSAGES:
        raise ValueError(f"messages holds {len(value)} messages; at most {MAX_MESSAGES}")
    out = []
    for index, message in enumerate(value):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise ValueError(f"messages[{index}] must be a mapping with a 'role'")
        out.append(dict(message))
    return out


def _responses(value: Responses, *, at_least: int, at_most: int) -> list[dict[str, Any]]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError("responses must be a list")
    if not at_least <= len(value) <= at_most:
        wanted = str(at_least) if at_least == at_most else f"{at_least} to {at_most}"
        raise ValueError(f"responses must hold {wanted} responses, not {len(value)}")
    out = []
    for index, response in enumerate(value):
        if isinstance(response, str):
            out.append({"content": response})
        elif isinstance(response, Mapping) and isinstance(response.get("content"), str):
            out.append(dict(response))
        else:
            raise ValueError(f"responses[{index}] must be a string or a mapping with 'content'")
    return out


def _timestamp(value: datetime | str | None) -> str:
    if value is None:
        return datetime.now(timezone.utc).isoformat()  # noqa: UP017 (Python 3.10)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamp must carry a time zone (e.g. datetime.now(timezone.utc))")
        return value.isoformat()
    if isinstance(value, str):
        return value
    raise ValueError("timestamp must be a datetime with a time zone or an ISO 8601 string")


def common(
    kind: str,
    *,
    messages: Messages,
    id: str | None,
    model: str | None,
    checkpoint: str | None,
    rater: str | None,
    reason: str | None,
    comment: str | None,
    tags: Sequence[str] | None,
    metadata: Mapping[str, Any] | None,
    consent: bool | None,
    licence: str | None,
    timestamp: datetime | str | None,
) -> dict[str, Any]:
    """The fields every event type shares, checked; None values are left out."""
    _short("id", id)
    _short("model", model)
    _short("checkpoint", checkpoint)
    _short("rater", rater)
    event: dict[str, Any] = {
        "type": kind,
        "id": id or new_event_id(),
        "messages": _messages(messages),
    }
    for name, value in (("model", model), ("checkpoint", checkpoint), ("rater", rater)):
        if value is not None:
            event[name] = value
    if reason is not None:
        event["reason"] = _text("reason", reason, 100)
    if comment is not None:
        event["comment"] = _text("comment", comment, MAX_COMMENT)
    if tags is not None:
        if isinstance(tags, str) or not all(isinstance(tag, str) and tag for tag in tags):
            raise ValueError("tags must be a list of non-empty strings")
        if len(tags) > MAX_TAGS:
            raise ValueError(f"tags holds {len(tags)} tags; at most {MAX_TAGS}")
        event["tags"] = list(tags)
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise ValueError("metadata must be a mapping")
        event["metadata"] = dict(metadata)
    if consent is not None:
        if not isinstance(consent, bool):
            raise ValueError("consent must be True or False")
        event["consent"] = consent
    if licence is not None:
        event["licence"] = _text("licence", licence, 100)
    event["timestamp"] = _timestamp(timestamp)
    return event


def rating_fields(*, response: str, rating: int | None, score: int | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"response": _text("response", response)}
    if rating is None and score is None:
        raise ValueError("a rating needs rating (1 or -1) or score (1-10)")
    if rating is not None:
        if _int("rating", rating) not in (1, -1):
            raise ValueError(f"rating must be 1 (thumbs up) or -1 (thumbs down), not {rating!r}")
        fields["rating"] = rating
    if score is not None:
        if not 1 <= _int("score", score) <= 10:
            raise ValueError(f"score must be between 1 and 10, not {score!r}")
        fields["score"] = score
    return fields


def preference_fields(*, responses: Responses, choice: Choice) -> dict[str, Any]:
    if isinstance(choice, bool) or choice not in CHOICES:
        raise ValueError(f"choice must be 0, 1, 'tie' or 'both_bad', not {choice!r}")
    return {"responses": _responses(responses, at_least=2, at_most=2), "choice": choice}


def ranking_fields(*, responses: Responses, ranking: Sequence[int]) -> dict[str, Any]:
    listed = _responses(responses, at_least=2, at_most=MAX_RESPONSES)
    if isinstance(ranking, str) or not isinstance(ranking, Sequence):
        raise ValueError("ranking must be a list of indices into responses, best first")
    order = [_int("ranking item", index) for index in ranking]
    if sorted(order) != list(range(len(listed))):
        raise ValueError(
            f"ranking must list each index of responses (0..{len(listed) - 1}) exactly once, best first"
        )
    return {"responses": listed, "ranking": order}


def edit_fields(*, response: str, edited: str) -> dict[str, Any]:
    if _text("edited", edited) == _text("response", response):
        raise ValueError("edited is the same as response")
    return {"response": response, "edited": edited}


def prepare_raw(event: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a raw event with an id (a fresh one if it had none); only `type` is checked."""
    if not isinstance(event, Mapping):
        raise ValueError("an event must be a mapping")
    if event.get("type") not in EVENT_TYPES:
        raise ValueError(f"type must be one of {', '.join(EVENT_TYPES)}")
    prepared = dict(event)
    if prepared.get("id") is None:
        prepared["id"] = new_event_id()
    _short("id", prepared["id"], required=True)
    return prepared


def encode(event: Mapping[str, Any]) -> bytes:
    """The event as compact JSON: a snapshot, so later changes to the caller's dicts don't leak in."""
    try:
        body = json.dumps(
            event, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the event holds a value JSON cannot carry: {exc}") from exc
    if b"\\u0000" in body:
        raise ValueError("the event holds a NUL character, which the server refuses")
    if len(body) > MAX_EVENT_BYTES:
        raise ValueError(f"the event is {len(body)} bytes of JSON; the server takes at most 5 MB")
    return body


def rating(
    *,
    messages: Messages,
    response: str,
    rating: int | None = None,
    score: int | None = None,
    model: str | None = None,
    checkpoint: str | None = None,
    rater: str | None = None,
    reason: str | None = None,
    comment: str | None = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    consent: bool | None = None,
    licence: str | None = None,
    timestamp: datetime | str | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """A checked rating event: thumbs (`rating` 1 or -1) and/or a 1-10 `score` of one reply."""
    event = common(
        "rating",
        messages=messages,
        id=id,
        model=model,
        checkpoint=checkpoint,
        rater=rater,
        reason=reason,
        comment=comment,
        tags=tags,
        metadata=metadata,
        consent=consent,
        licence=licence,
        timestamp=timestamp,
    )
    event.update(rating_fields(response=response, rating=rating, score=score))
    return event


def preference(
    *,
    messages: Messages,
    responses: Responses,
    choice: Choice,
    model: str | None = None,
    checkpoint: str | None = None,
    rater: str | None = None,
    reason: str | None = None,
    comment: str | None = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    consent: bool | None = None,
    licence: str | None = None,
    timestamp: datetime | str | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """A checked preference event: two `responses` and the `choice` (0, 1, "tie", "both_bad")."""
    event = common(
        "preference",
        messages=messages,
        id=id,
        model=model,
        checkpoint=checkpoint,
        rater=rater,
        reason=reason,
        comment=comment,
        tags=tags,
        metadata=metadata,
        consent=consent,
        licence=licence,
        timestamp=timestamp,
    )
    event.update(preference_fields(responses=responses, choice=choice))
    return event


def ranking(
    *,
    messages: Messages,
    responses: Responses,
    ranking: Sequence[int],
    model: str | None = None,
    checkpoint: str | None = None,
    rater: str | None = None,
    reason: str | None = None,
    comment: str | None = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    consent: bool | None = None,
    licence: str | None = None,
    timestamp: datetime | str | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """A checked ranking event: 2-20 `responses` and `ranking`, their indices best first."""
    event = common(
        "ranking",
        messages=messages,
        id=id,
        model=model,
        checkpoint=checkpoint,
        rater=rater,
        reason=reason,
        comment=comment,
        tags=tags,
        metadata=metadata,
        consent=consent,
        licence=licence,
        timestamp=timestamp,
    )
    event.update(ranking_fields(responses=responses, ranking=ranking))
    return event


def edit(
    *,
    messages: Messages,
    response: str,
    edited: str,
    model: str | None = None,
    checkpoint: str | None = None,
    rater: str | None = None,
    reason: str | None = None,
    comment: str | None = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    consent: bool | None = None,
    licence: str | None = None,
    timestamp: datetime | str | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """A checked edit event: the `response` and the user's corrected version, `edited`."""
    event = common(
        "edit",
        messages=messages,
        id=id,
        model=model,
        checkpoint=checkpoint,
        rater=rater,
        reason=reason,
        comment=comment,
        tags=tags,
        metadata=metadata,
        consent=consent,
        licence=licence,
        timestamp=timestamp,
    )
    event.update(edit_fields(response=response, edited=edited))
    return event
