"""From Langfuse's shapes to Sinkhole's: pure functions, no database.

A Langfuse score is a judgement on a trace: a name, a value and a data type, but no text. It
becomes a Sinkhole `rating` event:

| Langfuse `dataType` | `value`                               | Sinkhole                              |
| ------------------- | ------------------------------------- | ------------------------------------- |
| BOOLEAN             | 1 (true)                              | `rating` 1                            |
| BOOLEAN             | 0 (false)                             | `rating` -1                           |
| NUMERIC             | 1                                     | `rating` 1                            |
| NUMERIC             | 0 or -1                               | `rating` -1                           |
| NUMERIC             | strictly between 0 and 1              | `score` 1 + round(9 × value)          |
| NUMERIC             | above 1, up to 10                     | `score` round(value)                  |
| NUMERIC             | in `metadata.min`..`metadata.max`     | `score` 1 + round(9 × (v-min)/(max-min)) |
| CATEGORICAL         | a positive word (good, correct, yes…) | `rating` 1, the word as `reason`      |
| CATEGORICAL         | a negative word (bad, wrong, toxic…)  | `rating` -1, the word as `reason`     |
| CATEGORICAL         | a middling word (neutral, partially…) | `score` 5, the word as `reason`       |
| anything else       |                                       | refused with a message (400)          |

Without `dataType`, a string value is CATEGORICAL and a number NUMERIC, as in Langfuse.
A score whose name says it measures a defect (`hallucination`, `toxicity`, `is_toxic`,
`thumbs_down`… and no `not`/`no`/`free` beside it) is read the other way round: 1 is bad.
`not_` before a category inverts it (`not toxic` is positive).

Texts come from the trace when Sinkhole has it (see `messages_from` and `response_from`);
otherwise the event holds placeholders in brackets and `metadata.placeholders` names them, as
the importers do."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from apps.feedback.importers.base import PLACEHOLDERS, digest, event_id, iso_time, text_of
from apps.feedback.schema import MAX_MESSAGES, MAX_TEXT

DATA_TYPES = ("NUMERIC", "BOOLEAN", "CATEGORICAL")
MAX_SCORE_METADATA_BYTES = 4096
_Id = Annotated[str, Field(min_length=1, max_length=200)]


class MappingError(ValueError):
    """A score Sinkhole cannot read as a rating; the message says what it can read."""


class ScoreBody(BaseModel):
    """Langfuse's score body (`POST /api/public/scores`, and `score-create` events).

    Unknown fields are ignored, as newer Langfuse clients send fields this server has no use
    for; the ones it knows are checked."""

    model_config = ConfigDict(extra="ignore")

    id: _Id | None = None
    traceId: _Id | None = None
    observationId: _Id | None = None
    sessionId: _Id | None = None
    datasetRunId: _Id | None = None
    name: Annotated[str, Field(min_length=1, max_length=200)]
    value: bool | int | float | Annotated[str, Field(max_length=500)]
    dataType: Literal["NUMERIC", "BOOLEAN", "CATEGORICAL", "TEXT", "CORRECTION"] | None = None
    comment: Annotated[str, Field(max_length=10_000)] | None = None
    metadata: Any = None
    environment: Annotated[str, Field(max_length=100)] | None = None
    configId: _Id | None = None
    queueId: _Id | None = None
    timestamp: str | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _value_is_finite(cls, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


def parse_score(data: Any) -> tuple[ScoreBody | None, dict[str, list[str]]]:
    """The score body, or field errors keyed by field name."""
    if not isinstance(data, dict):
        return None, {"non_field_errors": ["a score must be a JSON object"]}
    try:
        score = ScoreBody.model_validate(data)
    except ValidationError as exc:
        fields: dict[str, list[str]] = {}
        for error in exc.errors(include_url=False, include_input=False):
            path = ".".join(str(part) for part in error["loc"][:1]) or "non_field_errors"
            message = error["msg"].removeprefix("Value error, ")
            fields.setdefault(path, [])
            if message not in fields[path]:
                fields[path].append(message)
        return None, fields
    if not (score.traceId or score.sessionId):
        return None, {"traceId": ["a score needs the traceId (or the sessionId) it judges"]}
    return score, {}


# --- the judgement --------------------------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    """What a score says, in Sinkhole's terms: a thumb (`rating`) or a 1-10 `score`."""

    data_type: str
    rating: int | None = None
    score: int | None = None
    reason: str | None = None
    inverted: bool = False


_DEFECTS = frozenset(
    (
        "hallucination hallucinated hallucinates toxicity toxic harmful harm unsafe bias "
        "biased incorrect wrong error errors refusal refused flagged spam offensive dislike "
        "disliked downvote thumbsdown negative bad"
    ).split()
)
_NEGATIONS = {"not", "no", "non", "free", "without"}
_POSITIVE = frozenset(
    (
        "positive good great excellent correct accurate helpful useful relevant yes y true 1 "
        "like liked up thumbs_up thumbsup upvote pass passed accept accepted approve approved "
        "safe 👍"
    ).split()
)
_NEGATIVE = frozenset(
    (
        "negative bad poor terrible incorrect wrong inaccurate unhelpful useless irrelevant "
        "no n false 0 dislike disliked down thumbs_down thumbsdown downvote fail failed "
        "reject rejected unsafe toxic harmful hallucination hallucinated offensive spam 👎"
    ).split()
)
_MIDDLING = frozenset(
    (
        "neutral mixed ok okay average fair partial partially_correct partly_correct somewhat meh"
    ).split()
)
_GENERIC = {"yes", "y", "true", "1", "no", "n", "false", "0"}  # polarity comes from the name
_WORD = re.compile(r"[^0-9a-z👍👎]+")
MIDDLE_SCORE = 5


def _tokens(text: str) -> list[str]:
    return [token for token in _WORD.split(text.lower()) if token]


def measures_a_defect(name: str) -> bool:
    """Whether a score named NAME counts something bad, so that a high value is bad."""
    tokens = set(_tokens(name))
    joined = "".join(_tokens(name))
    return bool((tokens & _DEFECTS or joined in _DEFECTS) and not tokens & _NEGATIONS)


def data_type_of(score: ScoreBody) -> str:
    if score.dataType:
        return score.dataType
    if isinstance(score.value, bool):
        return "BOOLEAN"
    return "CATEGORICAL" if isinstance(score.value, str) else "NUMERIC"


def judge(score: ScoreBody) -> Judgement:
    """Read SCORE as a rating; raise `MappingError` saying why it cannot be one."""
    data_type = data_type_of(score)
    inverted = measures_a_defect(score.name)
    if data_type == "BOOLEAN":
        return _boolean(score.value, inverted)
    if data_type == "NUMERIC":
        return _numeric(score.value, score.metadata, inverted)
    if data_type == "CATEGORICAL":
        return _categorical(score.value, inverted)
    raise MappingError(
        f"a {data_type} score carries no judgement Sinkhole can store as a rating; send "
        "BOOLEAN, NUMERIC or CATEGORICAL scores"
    )


def _boolean(value: Any, inverted: bool) -> Judgement:
    truth: bool | None = None
    if isinstance(value, bool):
        truth = value
    elif isinstance(value, int | float) and value in (0, 1):
        truth = value == 1
    elif isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        truth = value.strip().lower() in ("true", "1")
    if truth is None:
        raise MappingError(f"a BOOLEAN score's value must be 1 or 0 (true or false), not {value!r}")
    return Judgement("BOOLEAN", rating=_thumb(truth != inverted), inverted=inverted)


def _numeric(value: Any, metadata: Any, inverted: bool) -> Judgement:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MappingError(f"a NUMERIC score's value must be a number, not {value!r}")
    scale = _scale(metadata)
    if scale is not None:
        low, high = scale
        if not low <= value <= high:
            raise MappingError(f"value {value} is outside the scale {low}..{high} in metadata")
        return _fraction((value - low) / (high - low), inverted)
    if value in (1, 0, -1):
        return Judgement("NUMERIC", rating=_thumb((value == 1) != inverted), inverted=inverted)
    if 0 < value < 1:
        return _fraction(float(value), inverted)
    if 1 < value <= 10:
        score = min(10, max(1, math.floor(value + 0.5)))
        return Judgement("NUMERIC", score=11 - score if inverted else score, inverted=inverted)
    raise MappingError(
        f"Sinkhole cannot read the NUMERIC value {value} as a rating: send 1 or 0 (thumbs), "
        "a fraction between 0 and 1, a score from 1 to 10, or the scale in the score's "
        'metadata ({"min": 1, "max": 5})'
    )


def _scale(metadata: Any) -> tuple[float, float] | None:
    if not isinstance(metadata, dict) or "min" not in metadata or "max" not in metadata:
        return None
    low, high = metadata["min"], metadata["max"]
    numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (low, high))
    if not numbers or not math.isfinite(low) or not math.isfinite(high) or high <= low:
        raise MappingError("metadata.min and metadata.max must be numbers with min < max")
    return float(low), float(high)


def _fraction(fraction: float, inverted: bool) -> Judgement:
    if inverted:
        fraction = 1 - fraction
    return Judgement("NUMERIC", score=1 + math.floor(9 * fraction + 0.5), inverted=inverted)


def _categorical(value: Any, inverted: bool) -> Judgement:
    if not isinstance(value, str) or not value.strip():
        raise MappingError(f"a CATEGORICAL score's value must be a category name, not {value!r}")
    words = _tokens(value.strip())
    negated = bool(words) and words[0] in ("not", "no", "non") and len(words) > 1
    key = "_".join(words[1:] if negated else words)
    reason = value.strip()[:100]
    if key in _MIDDLING:
        return Judgement("CATEGORICAL", score=MIDDLE_SCORE, reason=reason)
    if key in _POSITIVE:
        good = True
    elif key in _NEGATIVE:
        good = False
    else:
        raise MappingError(
            f"Sinkhole does not know the category {value!r}: use a positive word (good, "
            "correct, helpful, yes…), a negative one (bad, incorrect, toxic, no…) or a middling "
            "one (neutral, partially correct…)"
        )
    # A yes/no category takes its meaning from the name ("hallucination": yes is bad); a word
    # with a meaning of its own ("toxic", "correct") does not.
    flip = inverted and key in _GENERIC
    if negated:
        good = not good
    if flip:
        good = not good
    return Judgement("CATEGORICAL", rating=_thumb(good), reason=reason, inverted=flip)


def _thumb(good: bool) -> int:
    return 1 if good else -1


# --- texts ----------------------------------------------------------------------------------

_ROLES = {
    "system": "system",
    "developer": "developer",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "tool": "tool",
    "function": "function",
}
_PROMPT_KEYS = (
    "messages",
    "query",
    "sys.query",
    "question",
    "input",
    "prompt",
    "message",
    "text",
    "content",
    "inputs",
)
_REPLY_KEYS = (
    "content",
    "text",
    "answer",
    "output",
    "completion",
    "response",
    "result",
    "message",
    "choices",
    "messages",
)
_MAX_DEPTH = 4


def messages_from(value: Any, depth: int = 0) -> list[dict[str, Any]] | None:
    """OpenAI chat messages from a Langfuse `input`: a string (one user message), a list of
    chat messages (roles such as `human` and `ai` are renamed), or an object holding either
    under a usual key (`messages`, `query`, `input`, `prompt`…); None if nothing fits."""
    if depth > _MAX_DEPTH:
        return None
    if isinstance(value, str):
        return [{"role": "user", "content": _cut(value)}] if value.strip() else None
    if isinstance(value, list):
        messages = []
        for item in value:
            message = _message(item)
            if message is not None:
                messages.append(message)
        return messages[-MAX_MESSAGES:] or None
    if isinstance(value, dict):
        message = _message(value)
        if message is not None:
            return [message]
        for key in _PROMPT_KEYS:
            if key in value:
                found = messages_from(value[key], depth + 1)
                if found:
                    return found
    return None


def response_from(value: Any, depth: int = 0) -> str | None:
    """The reply's text from a Langfuse `output`: a string, a chat message, an OpenAI
    completion (`choices`), a list of messages (the last assistant one), or an object holding
    one of these under a usual key (`content`, `text`, `answer`, `output`…); None otherwise."""
    if depth > _MAX_DEPTH:
        return None
    if isinstance(value, str):
        return _cut(value) if value.strip() else None
    if isinstance(value, list):
        for item in reversed(value):
            message = _message(item)
            if message is not None and message["role"] == "assistant":
                return message["content"]
            if isinstance(item, dict) and "message" in item:  # OpenAI choices
                found = response_from(item["message"], depth + 1)
                if found:
                    return found
        return None
    if isinstance(value, dict):
        for key in _REPLY_KEYS:
            if key in value:
                found = response_from(value[key], depth + 1)
                if found:
                    return found
    return None


def _message(item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    role = _ROLES.get(str(item.get("role") or item.get("type") or "").lower())
    if role is None:
        return None
    content = text_of(item.get("content"))
    if content is None and isinstance(item.get("text"), str):
        content = item["text"]
    if not content or not content.strip():
        return None
    return {"role": role, "content": _cut(content)}


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 12] + " …[cut]"


# --- the event ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What Sinkhole knows of the judged trace: texts, model, the rater's keyed hash, and the
    gateway answer it is (whose checkpoint the score then counts for)."""

    messages: list[dict[str, Any]] | None = None
    response: str | None = None
    model: str = ""
    rater_hash: str = ""
    interaction_id: str = ""


def content_digest(score: ScoreBody) -> str:
    """A digest of what SCORE says (not of when or how it was sent): equal for a retry."""
    return digest(
        [
            score.name,
            data_type_of(score),
            score.value,
            score.comment or "",
            score.traceId or "",
            score.observationId or "",
            score.sessionId or "",
        ]
    )


def client_id_for(score_id: str, revision: int) -> str:
    """The event id of a score's REVISION-th value: `langfuse:score:<id>`, then `…:r2`, `…:r3`
    as the client changes the score (Langfuse upserts on id; Sinkhole appends)."""
    if revision <= 1:
        return event_id("langfuse", "score", score_id)
    return event_id("langfuse", "score", score_id, f"r{revision}")


def score_event(
    score: ScoreBody,
    judgement: Judgement,
    context: Context,
    *,
    score_id: str,
    client_id: str,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """The API v1 event a Langfuse score becomes, with the event id CLIENT_ID."""
    where = _where(score)
    placeholders = []
    messages = context.messages
    if not messages:
        messages = [{"role": "user", "content": f"[{where}: prompt not sent to Sinkhole]"}]
        placeholders.append("messages")
    response = context.response
    if not response:
        response = f"[{where}: reply not sent to Sinkhole]"
        placeholders.append("response")
    event: dict[str, Any] = {
        "type": "rating",
        "id": client_id,
        "messages": messages,
        "response": response,
        "metadata": {"langfuse": _langfuse_metadata(score, judgement, score_id)},
    }
    if placeholders:
        event["metadata"][PLACEHOLDERS] = placeholders
    if judgement.rating is not None:
        event["rating"] = judgement.rating
    if judgement.score is not None:
        event["score"] = judgement.score
    reason = _reason(score.metadata) or judgement.reason
    if reason:
        event["reason"] = reason
    if score.comment:
        event["comment"] = score.comment
    if context.model:
        event["model"] = context.model[:200]
    if context.rater_hash:
        event["rater"] = context.rater_hash
    if context.interaction_id:
        # The ingest sets model and checkpoint from the gateway's record of the answer.
        event["interaction_id"] = context.interaction_id
    if timestamp:
        event["timestamp"] = timestamp
    return event


def _where(score: ScoreBody) -> str:
    if score.traceId and score.observationId:
        return f"Langfuse trace {score.traceId}, observation {score.observationId}"
    if score.traceId:
        return f"Langfuse trace {score.traceId}"
    return f"Langfuse session {score.sessionId}"


def _langfuse_metadata(score: ScoreBody, judgement: Judgement, score_id: str) -> dict[str, Any]:
    import orjson

    kept: dict[str, Any] = {
        "score_id": score_id,
        "name": score.name,
        "data_type": judgement.data_type,
        "value": score.value,
    }
    for key, field in (
        ("trace_id", score.traceId),
        ("observation_id", score.observationId),
        ("session_id", score.sessionId),
        ("dataset_run_id", score.datasetRunId),
        ("environment", score.environment),
        ("config_id", score.configId),
        ("queue_id", score.queueId),
    ):
        if field:
            kept[key] = field
    if judgement.inverted:
        kept["inverted"] = True
    if score.metadata is not None:
        try:
            small = len(orjson.dumps(score.metadata)) <= MAX_SCORE_METADATA_BYTES
        except TypeError:
            small = False
        if small:
            kept["metadata"] = score.metadata
        else:
            kept["metadata_omitted"] = True
    return kept


def _reason(metadata: Any) -> str | None:
    """A reason the client gave beside the score (`metadata.reason`, or LibreChat's `tag`)."""
    if not isinstance(metadata, dict):
        return None
    for key in ("reason", "tag"):
        value = metadata.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:100]
    return None


def iso_timestamp(value: Any) -> str | None:
    """VALUE if it is an ISO 8601 date-time with a zone (what the event schema takes)."""
    return iso_time(value) if isinstance(value, str) else None
