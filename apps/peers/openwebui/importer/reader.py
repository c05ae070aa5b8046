"""Open WebUI's feedback export (Admin → Evaluations → Export, `GET /api/v1/evaluations/
feedbacks/all/export`): a JSON array of feedback records `{"id", "user_id", "type": "rating",
"data": {"rating", "model_id", "sibling_model_ids", "reason", "comment", "tags", "details":
{"rating": 1-10}}, "meta": {"arena", "chat_id", "message_id", "message_index"}, "snapshot":
{"chat": …}, "created_at"}`, streamed record by record (JSON Lines of records work too).

- An arena record (`sibling_model_ids` not empty) becomes one `preference` event per sibling,
  the rated model first: `rating` 1 means it beat the sibling (`choice` 0), -1 that it lost
  (`choice` 1), 0 a tie, which is how Open WebUI's own leaderboard reads it. A three-way arena
  win is two preferences. The thumbs itself is not stored a second time as a rating.
- Any other record becomes a thumbs `rating` event (`rating` ±1) with the 1-10 detail rating
  as `score` where there is one.
- `reason`, `comment` and `tags` are kept on every event, `user_id` is the rater, `created_at`
  the time; chat and message ids, the arena flag and `details` go into the metadata.
- Texts come from the chat snapshot: the rated message, its parent chain as `messages`, and for
  an arena sibling the reply under the same parent that its model wrote. Where the snapshot
  lacks them (exports often have empty snapshots) the field holds a placeholder in brackets and
  `metadata.placeholders` lists it, so datasets can leave it out.
- Ids: `openwebui:<feedback id>` for a rating, `openwebui:<feedback id>:<sibling model>` for
  each preference."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

from apps.feedback.importers.base import (
    PLACEHOLDERS,
    Record,
    digest,
    event_id,
    iso_time,
    read_json_records,
    text_of,
)

_ROLES = {"system", "user", "assistant"}
_OUTCOMES: dict[int, int | str] = {1: 0, -1: 1, 0: "tie"}


def read(stream: BinaryIO) -> Iterator[Record]:
    return read_json_records(stream, convert)


def convert(record: Any, where: str) -> Iterator[Record]:
    if not isinstance(record, dict) or not isinstance(record.get("data"), dict):
        yield Record(where, error="not an Open WebUI feedback record (no 'data')")
        return
    if record.get("type", "rating") != "rating":
        yield Record(where, skipped=f"feedback of type {record.get('type')!r} is not a rating")
        return
    data = record["data"]
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    model = data.get("model_id")
    if not isinstance(model, str) or not model:
        yield Record(where, error="data.model_id must name the rated model")
        return
    rating = _int(data.get("rating"))
    details = data.get("details") if isinstance(data.get("details"), dict) else {}
    score = _int(details.get("rating"))
    if score is not None and not 1 <= score <= 10:
        score = None  # not the 1-10 scale; it stays in metadata.details
    siblings = [
        name for name in data.get("sibling_model_ids") or [] if isinstance(name, str) and name
    ]
    feedback_id = (
        record.get("id") if isinstance(record.get("id"), str) and record["id"] else digest(record)
    )

    chat = _History(record)
    message_id = meta.get("message_id")
    rated = chat.get(message_id)
    common: dict[str, Any] = {"metadata": _metadata(record, meta, details)}
    for key in ("reason", "comment"):
        if isinstance(data.get(key), str) and data[key]:
            common[key] = data[key]
    tags = [tag for tag in data.get("tags") or [] if isinstance(tag, str) and tag.strip()]
    if tags:
        common["tags"] = tags
    if isinstance(record.get("user_id"), str) and record["user_id"]:
        common["rater"] = record["user_id"]
    when = iso_time(record.get("created_at"))
    if when is not None:
        common["timestamp"] = when

    placeholders: list[str] = []
    messages = chat.thread_above(rated)
    if not messages:
        chat_id = meta.get("chat_id") or "?"
        messages = [
            {
                "role": "user",
                "content": f"[Open WebUI chat {chat_id}, message {message_id}: prompt not in the export]",
            }
        ]
        placeholders.append("messages")
    rated_text = text_of(rated.get("content")) if rated else None

    if siblings:
        outcome = _OUTCOMES.get(rating) if rating is not None else None
        if outcome is None:
            yield Record(
                where, error=f"an arena rating must be 1, 0 or -1, not {data.get('rating')!r}"
            )
            return
        for sibling in siblings:
            own = list(placeholders)
            reply_a = rated_text
            if reply_a is None:
                reply_a = f"[reply of {model}: not in the export]"
                own.append("responses.0")
            reply_b = text_of(chat.sibling_reply(rated, sibling).get("content")) if rated else None
            if reply_b is None:
                reply_b = f"[reply of {sibling}: not in the export]"
                own.append("responses.1")
            event = {
                "type": "preference",
                "id": event_id("openwebui", feedback_id, sibling),
                "messages": messages,
                "responses": [
                    {"model": model, "content": reply_a},
                    {"model": sibling, "content": reply_b},
                ],
                "choice": outcome,
                **common,
            }
            yield Record(f"{where}, vs {sibling}", event=_with_placeholders(event, own))
        return

    if rating not in (1, -1) and score is None:
        yield Record(
            where, error=f"no thumbs (rating {data.get('rating')!r}) and no 1-10 detail rating"
        )
        return
    own = list(placeholders)
    if rated_text is None:
        rated_text = f"[reply of {model}: not in the export]"
        own.append("response")
    event = {
        "type": "rating",
        "id": event_id("openwebui", feedback_id),
        "model": model,
        "messages": messages,
        "response": rated_text,
        **common,
    }
    if rating in (1, -1):
        event["rating"] = rating
    if score is not None:
        event["score"] = score
    yield Record(where, event=_with_placeholders(event, own))


class _History:
    """The message tree of the chat snapshot (`history.messages`, keyed by id)."""

    def __init__(self, record: dict[str, Any]) -> None:
        snapshot = record.get("snapshot") if isinstance(record.get("snapshot"), dict) else {}
        chat = snapshot.get("chat") if isinstance(snapshot.get("chat"), dict) else {}
        inner = chat.get("chat") if isinstance(chat.get("chat"), dict) else chat
        history = inner.get("history") if isinstance(inner.get("history"), dict) else {}
        messages = history.get("messages")
        self.messages: dict[str, Any] = messages if isinstance(messages, dict) else {}

    def get(self, message_id: Any) -> dict[str, Any] | None:
        found = self.messages.get(message_id) if isinstance(message_id, str) else None
        return found if isinstance(found, dict) else None

    def thread_above(self, message: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The messages from the root down to MESSAGE's parent, in order; [] if any is missing."""
        thread: list[dict[str, Any]] = []
        seen: set[str] = set()
        parent_id = message.get("parentId") if message else None
        while parent_id is not None:
            parent = self.get(parent_id)
            if parent is None or parent_id in seen or parent.get("role") not in _ROLES:
                return []
            content = text_of(parent.get("content"))
            if content is None:
                return []
            seen.add(parent_id)
            thread.append({"role": parent["role"], "content": content})
            parent_id = parent.get("parentId")
        thread.reverse()
        return thread

    def sibling_reply(self, rated: dict[str, Any], model: str) -> dict[str, Any]:
        """The reply MODEL wrote under the rated message's parent (the last, if it regenerated)."""
        parent = self.get(rated.get("parentId"))
        found: dict[str, Any] = {}
        for child_id in (parent or {}).get("childrenIds") or []:
            child = self.get(child_id)
            if child is None or child_id == rated.get("id"):
                continue
            if model in (child.get("selectedModelId"), child.get("model")):
                found = child
        return found


def _metadata(
    record: dict[str, Any], meta: dict[str, Any], details: dict[str, Any]
) -> dict[str, Any]:
    metadata = {
        key: meta[key] for key in ("chat_id", "message_id", "message_index", "arena") if key in meta
    }
    if isinstance(record.get("id"), str):
        metadata["feedback_id"] = record["id"]
    updated = record.get("updated_at")
    if isinstance(updated, int | float) and not isinstance(updated, bool):
        metadata["updated_at"] = updated  # a changed rating is newer: services/revisions.py
    if details:
        metadata["details"] = details
    return metadata


def _with_placeholders(event: dict[str, Any], placeholders: list[str]) -> dict[str, Any]:
    if placeholders:
        event["metadata"] = {**event["metadata"], PLACEHOLDERS: placeholders}
    return event


def _int(value: Any) -> int | None:
    """Open WebUI stores ratings as numbers; older exports sometimes as strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None
