"""Writes behind the Langfuse-compatible endpoints: scores become rating events through
`feedback_ingest` (validation, redaction, rater hashing, the append-only log), and traces and
generations are kept as context so that a score on them carries their text.

Idempotency: a score is identified by its Langfuse id (or, in an ingestion batch without one,
its envelope's event id). Sending the same score again is a `duplicate`. Langfuse upserts on
id, so a client may change a score (LibreChat does when a user flips a thumb): the new value is
a new event (`langfuse:score:<id>:r2`, `:r3`…) and `LangfuseScore` points at the current one;
the log keeps every value. Each score is handled in its own transaction, holding its
`LangfuseScore` row locked, so that two requests for one score id cannot interleave."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.feedback.redaction import redact_text
from apps.feedback.services.ingest import DUPLICATE, ERROR, feedback_ingest
from apps.peers.langfuse.mapping import (
    DATA_TYPES,
    Context,
    Judgement,
    MappingError,
    ScoreBody,
    client_id_for,
    content_digest,
    iso_timestamp,
    judge,
    messages_from,
    parse_score,
    response_from,
    score_event,
)
from apps.peers.models import CONTEXT_DAYS, LangfuseObservation, LangfuseScore
from apps.serving.selectors import served_answers_by_trace
from apps.sources.hashing import rater_hash
from apps.sources.models import Source

logger = logging.getLogger(__name__)

SCORE_TYPES = {"score-create"}
TRACE_TYPES = {"trace-create"}
GENERATION_TYPES = {"generation-create", "generation-update"}
OBSERVATION_TYPES = {"observation-create", "observation-update"}  # legacy; GENERATION kept
IGNORED_TYPES = {"span-create", "span-update", "event-create", "sdk-log"}
EVENT_TYPES = SCORE_TYPES | TRACE_TYPES | GENERATION_TYPES | OBSERVATION_TYPES | IGNORED_TYPES


class _Refused(Exception):
    """Rolls back one score's savepoint (its reserved row) when ingest refused its event."""


@dataclass
class ScoreOutcome:
    """What happened to one score: `accepted`, `quarantined`, `duplicate` or `error`."""

    score_id: str | None
    status: str
    event_id: int | None = None
    message: str = ""
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status != ERROR


@dataclass(frozen=True)
class ScoreInput:
    """One score to store: its raw body, the id to use when the body has none (an ingestion
    envelope's id), and the time the client gave (an envelope's timestamp)."""

    data: Any
    fallback_id: str | None = None
    timestamp: str | None = None


def langfuse_scores_create(
    *, source: Source, items: list[ScoreInput], client_ip: str = ""
) -> list[ScoreOutcome]:
    """Store each Langfuse score of ITEMS as a rating event of SOURCE; one outcome per item."""
    parsed: list[tuple[ScoreBody, Judgement, str] | ScoreOutcome] = []
    for item in items:
        score, errors = parse_score(item.data)
        if score is None:
            parsed.append(
                ScoreOutcome(_raw_id(item), ERROR, message="Invalid score", errors=errors)
            )
            continue
        score_id = score.id or item.fallback_id
        if not score_id:
            parsed.append(
                ScoreOutcome(
                    None, ERROR, message="Invalid score", errors={"id": ["a score needs an id"]}
                )
            )
            continue
        try:
            judgement = judge(score)
        except MappingError as exc:
            parsed.append(
                ScoreOutcome(score_id, ERROR, message=str(exc), errors={"value": [str(exc)]})
            )
            continue
        parsed.append((score, judgement, score_id))

    scored = [p[0] for p in parsed if isinstance(p, tuple)]
    contexts = _with_gateway_answers(source, scored, _contexts(source, scored))
    outcomes = []
    for entry, item in zip(parsed, items, strict=True):
        if isinstance(entry, ScoreOutcome):
            outcomes.append(entry)
            continue
        score, judgement, score_id = entry
        outcomes.append(
            _store_score(
                source,
                score,
                judgement,
                score_id,
                contexts.get(_context_key(score), Context()),
                timestamp=iso_timestamp(score.timestamp) or iso_timestamp(item.timestamp),
                client_ip=client_ip,
            )
        )
    return outcomes


def _store_score(
    source: Source,
    score: ScoreBody,
    judgement: Judgement,
    score_id: str,
    context: Context,
    *,
    timestamp: str | None,
    client_ip: str,
) -> ScoreOutcome:
    said = content_digest(score)
    for attempt in range(2):
        try:
            with transaction.atomic():
                return _store_locked(
                    source,
                    score,
                    judgement,
                    score_id,
                    context,
                    said,
                    timestamp=timestamp,
                    client_ip=client_ip,
                )
        except _Refused as refused:
            return refused.args[0]
        except IntegrityError:
            # Two requests created the row for a new score id at once: the loser goes again
            # and now finds (and waits for) the winner's row.
            if attempt:
                raise
    raise AssertionError("unreachable")


def _store_locked(
    source: Source,
    score: ScoreBody,
    judgement: Judgement,
    score_id: str,
    context: Context,
    said: str,
    *,
    timestamp: str | None,
    client_ip: str,
) -> ScoreOutcome:
    row, _ = LangfuseScore.objects.select_for_update().get_or_create(
        source=source,
        score_id=score_id,
        defaults={"name": score.name, "data_type": judgement.data_type},
    )
    if row.event_id is not None and row.digest == said and row.retracted_at is None:
        return ScoreOutcome(score_id, DUPLICATE, event_id=row.event_id)
    revision = row.revision + 1
    event = score_event(
        score,
        judgement,
        context,
        score_id=score_id,
        client_id=client_id_for(score_id, revision),
        timestamp=timestamp,
    )
    if row.event_id is not None and revision > 1:
        # A changed score revises its previous value's event: only the latest counts.
        event["supersedes"] = client_id_for(score_id, revision - 1)
    result = feedback_ingest(source=source, items=[event], client_ip=client_ip)[0]
    if result.status == ERROR and set(result.errors) == {"supersedes"}:
        # The previous value was stored under another rater (the trace named its user only
        # later): a rater revises only its own events, so this value stands on its own.
        logger.info("langfuse score %s: %s", score_id, result.errors["supersedes"][0])
        del event["supersedes"]
        result = feedback_ingest(source=source, items=[event], client_ip=client_ip)[0]
    if result.status == ERROR:
        raise _Refused(
            ScoreOutcome(
                score_id, ERROR, message="The score's event is invalid", errors=result.errors
            )
        )
    _set_current(row, score, judgement, said, revision, result.id, context)
    return ScoreOutcome(score_id, result.status, event_id=result.id)


def _set_current(
    row: LangfuseScore,
    score: ScoreBody,
    judgement: Judgement,
    said: str,
    revision: int,
    event_id: int | None,
    context: Context,
) -> None:
    row.trace_id = score.traceId or ""
    row.observation_id = score.observationId or ""
    row.session_id = score.sessionId or ""
    row.name = score.name
    row.data_type = judgement.data_type
    numeric = isinstance(score.value, int | float)
    row.value = float(score.value) if numeric else None
    row.string_value = "" if numeric else str(score.value)[:500]
    if isinstance(score.value, bool):
        row.string_value = "True" if score.value else "False"
    row.comment = score.comment or ""
    row.environment = (score.environment or "")[:100]
    row.event_id = event_id
    row.digest = said
    row.revision = revision
    row.with_text = bool(context.messages and context.response)
    row.retracted_at = None
    row.full_clean()
    row.save()


def langfuse_score_retract(*, source: Source, score_id: str) -> bool:
    """Mark the score retracted (the client deleted it); False if there is no such score.
    Its events stay in the append-only log."""
    changed = LangfuseScore.objects.filter(
        source=source, score_id=score_id, retracted_at__isnull=True
    ).update(retracted_at=timezone.now(), updated_at=timezone.now())
    return bool(changed)


# --- traces and generations as context ------------------------------------------------------


def _context_key(score: ScoreBody) -> tuple[str, str]:
    return score.traceId or "", score.observationId or ""


def _contexts(source: Source, scores: list[ScoreBody]) -> dict[tuple[str, str], Context]:
    """For each score, the text Sinkhole has of what it judges: the observation it names (the
    trace fills what that lacks), else the trace, else the trace's latest generation."""
    trace_ids = {score.traceId for score in scores if score.traceId}
    if not trace_ids:
        return {}
    rows = LangfuseObservation.objects.filter(source=source, trace_id__in=trace_ids).order_by(
        "updated_at", "id"
    )
    traces: dict[str, LangfuseObservation] = {}
    observations: dict[tuple[str, str], LangfuseObservation] = {}
    latest_generation: dict[str, LangfuseObservation] = {}
    # A trace whose text sits on its root span and whose model on a child generation (how OTLP
    # exports often look): the trace's latest generation that names a model.
    model_of_trace: dict[str, str] = {}
    for row in rows:
        if row.observation_id:
            observations[(row.trace_id, row.observation_id)] = row
            if row.kind == LangfuseObservation.Kind.GENERATION and row.model:
                model_of_trace[row.trace_id] = row.model
            if row.kind == LangfuseObservation.Kind.GENERATION and (row.response or row.messages):
                latest_generation[row.trace_id] = row
        else:
            traces[row.trace_id] = row
    found: dict[tuple[str, str], Context] = {}
    for score in scores:
        if not score.traceId:
            continue
        trace = traces.get(score.traceId)
        if score.observationId:
            first = observations.get((score.traceId, score.observationId))
            second = trace
        else:
            first = trace
            second = latest_generation.get(score.traceId)
        parts = [row for row in (first, second) if row is not None]
        found[_context_key(score)] = Context(
            messages=next((row.messages for row in parts if row.messages), None),
            response=next((row.response for row in parts if row.response), None),
            model=next(
                (row.model for row in parts if row.model), model_of_trace.get(score.traceId, "")
            ),
            rater_hash=trace.rater_hash if trace is not None else "",
        )
    return found


def _with_gateway_answers(
    source: Source, scores: list[ScoreBody], contexts: dict[tuple[str, str], Context]
) -> dict[tuple[str, str], Context]:
    """Scores on answers of Sinkhole's own gateway: a score whose observation or trace id names
    one (its interaction id, the trace id the answer gave, or the trace the client put the call
    in) carries that answer's interaction id, so the ingest attaches it to the checkpoint that
    answered. The answer's prompt, reply and rater fill what the trace lacks when the answer was
    given to this same source (another source's text is not this one's to read)."""
    ids = [i for score in scores for i in (score.observationId, score.traceId) if i]
    answers = served_answers_by_trace(ids)
    if not answers:
        return contexts
    found = dict(contexts)
    for score in scores:
        answer = answers.get(score.observationId or "") or answers.get(score.traceId or "")
        if answer is None:
            continue
        key = _context_key(score)
        context = found.get(key, Context())
        own = answer.source_id == source.pk
        found[key] = replace(
            context,
            interaction_id=answer.interaction_id,
            messages=context.messages or (answer.messages if own else None) or None,
            response=context.response or (answer.response if own else None) or None,
            rater_hash=context.rater_hash or (answer.rater_hash if own else ""),
        )
    return found


def langfuse_observation_record(
    *, source: Source, kind: str, trace_id: str, observation_id: str, body: dict[str, Any]
) -> None:
    """Keep what BODY (a trace or generation, create or update) says of its texts: only the
    fields it carries overwrite what was there, as Langfuse merges updates."""
    fields: dict[str, Any] = {"kind": kind}
    if isinstance(body.get("name"), str):
        fields["name"] = body["name"][:200]
    if isinstance(body.get("model"), str):
        fields["model"] = body["model"][:200]
    if isinstance(body.get("sessionId"), str):
        fields["session_id"] = body["sessionId"][:200]
    if isinstance(body.get("userId"), str) and body["userId"]:
        fields["rater_hash"] = rater_hash(source.pk, body["userId"][:200])
    if body.get("input") is not None:
        messages = messages_from(body["input"])
        if messages:
            fields["messages"] = _redacted_messages(source, messages)
    if body.get("output") is not None:
        response = response_from(body["output"])
        if response:
            fields["response"] = _redacted(source, response)
    LangfuseObservation.objects.update_or_create(
        source=source,
        trace_id=trace_id[:200],
        observation_id=observation_id[:200],
        defaults=fields,
    )


def _redacted(source: Source, text: str) -> str:
    return redact_text(text, Counter()) if source.redact_pii else text


def _redacted_messages(source: Source, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**message, "content": _redacted(source, message["content"])} for message in messages]


def langfuse_context_purge(*, older_than: timedelta = timedelta(days=CONTEXT_DAYS)) -> int:
    """Forget trace texts not updated for OLDER_THAN; return how many were deleted."""
    deleted, _ = LangfuseObservation.objects.filter(
        updated_at__lt=timezone.now() - older_than
    ).delete()
    return deleted


# OpenTelemetry exports (OTLP protobuf and JSON) are read in `otlp.py` and kept through
# `langfuse_observation_record` like ingestion batches.


# --- the ingestion batch --------------------------------------------------------------------


@dataclass
class IngestionOutcome:
    """Langfuse's 207 body: `successes` [{id, status}] and `errors` [{id, status, message, error}]."""

    successes: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"successes": self.successes, "errors": self.errors}


def langfuse_ingestion(
    *, source: Source, batch: list[Any], client_ip: str = ""
) -> IngestionOutcome:
    """Handle a Langfuse ingestion batch: traces and generations first (so that a score in the
    same batch finds their text whatever the order), then scores; spans, events and SDK logs
    are acknowledged and dropped. Every event answers on its own: a bad one never spoils the
    others."""
    answers: list[dict[str, Any] | None] = [None] * len(batch)
    scores: list[tuple[int, str, ScoreInput]] = []
    for index, envelope in enumerate(batch):
        event_id, kind, body, problem = _envelope(envelope, index)
        if problem:
            answers[index] = _error(event_id, problem)
        elif kind in SCORE_TYPES:
            scores.append((index, event_id, ScoreInput(body, event_id, envelope.get("timestamp"))))
        else:
            answers[index] = _context_event(source, event_id, kind, body)

    if scores:
        outcomes = langfuse_scores_create(
            source=source, items=[item for _, _, item in scores], client_ip=client_ip
        )
        for (index, event_id, _), outcome in zip(scores, outcomes, strict=True):
            if outcome.ok:
                answers[index] = {"id": event_id, "status": 201}
            else:
                answers[index] = _error(event_id, outcome.message, outcome.errors)

    result = IngestionOutcome()
    for answer in answers:
        assert answer is not None
        (result.errors if answer["status"] >= 400 else result.successes).append(answer)
    return result


def _envelope(envelope: Any, index: int) -> tuple[str, str, dict[str, Any], str]:
    """(event id, type, body, problem) of one batch item; PROBLEM is empty when it is usable."""
    if not isinstance(envelope, dict):
        return f"batch[{index}]", "", {}, "each batch item must be an object"
    event_id = envelope.get("id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 200:
        return f"batch[{index}]", "", {}, "id must be a string of 1-200 characters"
    kind = envelope.get("type")
    if kind not in EVENT_TYPES:
        return event_id, "", {}, f"unsupported event type {kind!r}"
    body = envelope.get("body")
    if not isinstance(body, dict):
        return event_id, kind, {}, "body must be an object"
    timestamp = envelope.get("timestamp")
    if timestamp is not None and not isinstance(timestamp, str):
        return event_id, kind, {}, "timestamp must be an ISO 8601 string"
    return event_id, kind, body, ""


def _context_event(
    source: Source, event_id: str, kind: str, body: dict[str, Any]
) -> dict[str, Any]:
    if kind in OBSERVATION_TYPES and body.get("type") == "GENERATION":
        kind = "generation-create"
    if kind in TRACE_TYPES and _usable_id(body.get("id")):
        langfuse_observation_record(
            source=source,
            kind=LangfuseObservation.Kind.TRACE,
            trace_id=body["id"],
            observation_id="",
            body=body,
        )
    elif (
        kind in GENERATION_TYPES and _usable_id(body.get("id")) and _usable_id(body.get("traceId"))
    ):
        langfuse_observation_record(
            source=source,
            kind=LangfuseObservation.Kind.GENERATION,
            trace_id=body["traceId"],
            observation_id=body["id"],
            body=body,
        )
    return {"id": event_id, "status": 201}


def _usable_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 200


def _error(
    event_id: str, message: str, errors: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    return {"id": event_id, "status": 400, "message": message, "error": errors or message}


def _raw_id(item: ScoreInput) -> str | None:
    data = item.data
    if isinstance(data, dict) and isinstance(data.get("id"), str):
        return data["id"]
    return item.fallback_id


__all__ = [
    "DATA_TYPES",
    "EVENT_TYPES",
    "IngestionOutcome",
    "ScoreInput",
    "ScoreOutcome",
    "langfuse_context_purge",
    "langfuse_ingestion",
    "langfuse_observation_record",
    "langfuse_score_retract",
    "langfuse_scores_create",
]
