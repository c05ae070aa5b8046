"""feedback_ingest: the hot path from a request's events to rows in the raw event log. It is
the one place ingest happens: the API, the importers and the peers' compatible APIs call it.

A batch made with a key first passes admission control: while the workers are more than
INGEST_BACKLOG_SECONDS behind (the `pipeline_backlog` hook: events waiting ÷ the rate they are
cleared at), it is answered 429 with a Retry-After and nothing is stored, so what the web tier
accepts stays what the pipeline can judge in time. Single events (a click in a widget) and
importers are never turned away for it.

For a request made with a key: the key's and the raters' rate limits (nothing stored when the
key is over; a rater's extra items answered `rate_limited`), checked while the items are
prepared (the command leaves for Redis first, its answer is read after). Per item: validate
(pydantic), redact PII, hash the rater, and insert every good item of the batch in one
statement that skips ids the source already sent (ON CONFLICT DO NOTHING), so a retry — even
two at once on two connections — stores one event and answers `duplicate` with the original id;
a deadlock between two overlapping batches is retried. A bad item gets its field errors and
never touches the database.

After the commit, the workers get a hint (sent at most a few times a second per process) and
drain whatever waits in the database: normalized rows (`feedback.normalize_pending`), verdicts
(quality connects `events_stored`). The answer never depends on the broker: a hint that is lost
costs time, and the reconciler finds the events anyway (DESIGN 8)."""

from __future__ import annotations

import logging
import math
import random
import time
import uuid
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone
from rest_framework import status as http

from apps.core import metrics
from apps.core.exceptions import ApplicationError
from apps.feedback import signals
from apps.feedback.models import Event
from apps.feedback.redaction import redact_event
from apps.feedback.schema import validate_event
from apps.sources import ratelimit
from apps.sources.hashing import ip_hash, rater_hash
from apps.sources.models import ApiKey, Source

logger = logging.getLogger(__name__)

ACCEPTED, QUARANTINED, DUPLICATE, ERROR = "accepted", "quarantined", "duplicate", "error"


@dataclass
class ItemResult:
    """What the API answers for one item of a request, in request order."""

    index: int
    status: str
    id: int | None = None
    client_id: str | None = None
    code: str | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)
    retry_after: int = 0  # for `rate_limited`: seconds until the rater's window opens

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.id is not None:
            out["id"] = self.id
        if self.client_id is not None:
            out["client_id"] = self.client_id
        if self.status == ERROR:
            out["code"] = self.code or "invalid"
            out["errors"] = self.errors
        return out


@dataclass
class _Row:
    index: int
    client_id: str
    type: str
    payload: bytes
    rater_hash: str
    model: str
    checkpoint: str
    status: str
    consent: bool
    licence: str
    redactions: bytes
    occurred_at: datetime | None
    supersedes: str | None = None  # the client id of the event this one revises
    supersedes_id: int | None = None  # its server id, once resolved


def _served_answers(items: list[Any]) -> dict[str, tuple[str, str]] | None:
    """interaction id → (model, checkpoint) of the gateway answers the items quote: one query
    for the whole batch; None (and no query) when no item quotes one."""
    ids = []
    for item in items:
        if isinstance(item, dict):
            ids.append(item.get("interaction_id"))
            responses = item.get("responses")
            if isinstance(responses, list):
                ids.extend(r.get("interaction_id") for r in responses if isinstance(r, dict))
    ids = [i for i in ids if isinstance(i, str)]
    if not ids:
        return None
    return signals.served_answers.call(ids)  # serving provides it (it builds on feedback)


def _attach_answers(
    event: Any, payload: dict[str, Any], served: dict[str, tuple[str, str]]
) -> dict[str, list[str]]:
    """Where the event (or one of its responses) quotes a gateway answer, its model and
    checkpoint become that answer's, overriding what the client sent; unknown ids are errors."""
    errors: dict[str, list[str]] = {}
    links = [("", event.interaction_id, payload)] if event.interaction_id else []
    for position, response in enumerate(getattr(event, "responses", None) or []):
        if response.interaction_id:
            links.append(
                (f"responses.{position}.", response.interaction_id, payload["responses"][position])
            )
    for prefix, interaction_id, target in links:
        if interaction_id not in served:
            errors[f"{prefix}interaction_id"] = [
                "is not the id of an answer this server's gateway gave"
            ]
            continue
        target["model"], target["checkpoint"] = served[interaction_id]
        target["interaction_id"] = (
            interaction_id  # as sent: the redactor may have taken digits for PII
        )
    return errors


def _prepare(
    index: int, item: Any, *, source: Source, served: dict[str, tuple[str, str]] | None = None
) -> _Row | ItemResult:
    event, errors = validate_event(item)
    if event is None:
        client_id = (
            item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else None
        )
        return ItemResult(index, ERROR, client_id=client_id, code="invalid", errors=errors)
    payload = dict(item)
    if event.id:
        payload["id"] = event.id  # in NFC, as validated
    if event.supersedes:
        payload["supersedes"] = event.supersedes
    redactions: dict[str, int] = {}
    if source.redact_pii:
        # Every field but references: the id, model and licence columns come from its answer.
        payload, redactions = redact_event(payload)
    if served is not None:
        errors = _attach_answers(event, payload, served)
        if errors:
            return ItemResult(index, ERROR, client_id=event.id, code="invalid", errors=errors)
    hashed_rater = rater_hash(source.pk, event.rater) if event.rater else ""
    if event.rater:
        payload["rater"] = hashed_rater
    client_id = payload.get("id") or f"sinkhole-{uuid.uuid4().hex}"
    payload["id"] = client_id
    raw = orjson.dumps(payload)
    # The bytes \u0000 also appear where a text merely mentions that escape: look for a real NUL.
    nul_at = _nul_path(payload) if b"\\u0000" in raw else ""
    if nul_at:
        return ItemResult(
            index,
            ERROR,
            client_id=client_id,
            code="invalid",
            errors={nul_at: ["must not contain NUL (\\u0000) characters"]},
        )
    return _Row(
        index=index,
        client_id=client_id,
        type=event.type,
        payload=raw,
        rater_hash=hashed_rater,
        model=payload.get("model") or "",
        checkpoint=payload.get("checkpoint") or "" if served else event.checkpoint or "",
        status=QUARANTINED if source.hold_for_review else ACCEPTED,
        consent=source.default_consent if event.consent is None else event.consent,
        licence=payload["licence"] if event.licence is not None else source.default_licence,
        redactions=orjson.dumps(redactions),
        occurred_at=event.timestamp,
        supersedes=payload["supersedes"] if event.supersedes else None,
    )


def _nul_path(value: Any, path: str = "") -> str:
    """The dotted path of the first string that holds a NUL character."""
    if isinstance(value, str):
        return path if "\x00" in value else ""
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return f"{path}.{key!r}".lstrip(".")
        found = _nul_path(item, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return ""


def feedback_ingest(
    *,
    source: Source,
    items: list[Any],
    client_ip: str = "",
    key: ApiKey | None = None,
    batch: bool = False,
) -> list[ItemResult]:
    """Store the good items of a request in the raw event log; one result per item, in order.

    A BATCH with KEY while the pipeline is too far behind: `ApplicationError` 429 (code
    `backlog`, Retry-After) and nothing is stored (`feedback_admit_batch`).

    With KEY (a request to the API), the key's and the raters' per-minute limits apply first:
    over the key's, `ApplicationError` 429 and nothing is stored; a rater's items beyond its
    limit are answered `rate_limited` (with `retry_after`) and stored nowhere. Importers pass
    no key: their files are not rate limited."""
    started = time.perf_counter()
    if key is not None and batch:
        feedback_admit_batch()
    if key is None:
        prepared, refused = _prepare_all(source=source, items=items), {}
    else:
        # The rate-limit command leaves for Redis first and its answer is read after the items
        # are validated and redacted: the round trip hides behind that work (ratelimit.
        # check_request_begin). The answers are the same as checking first: over the key's
        # limit nothing is stored, and a refused rater's items are answered `rate_limited`.
        pending = _rate_limits_begin(key=key, source=source, items=items)
        try:
            prepared = _prepare_all(source=source, items=items)
        finally:
            checked = pending.result()  # always read: it gives the Redis connection back
        refused = _rate_limit_refusals(checked, source=source, items=items)
    for attempt in range(_DEADLOCK_ATTEMPTS):
        try:
            final = _store(
                source=source, items=items, client_ip=client_ip, refused=refused, prepared=prepared
            )
            break
        except IntegrityError as exc:
            # Two requests revised one event at once: the database kept the first revision
            # (Event.supersedes is unique). Run it again: the loser now gets its item error.
            if attempt == _DEADLOCK_ATTEMPTS - 1 or "supersedes" not in str(exc):
                raise
        except OperationalError as exc:
            # Two overlapping batches that list the same new ids in different orders each wait
            # for the other's rows; PostgreSQL breaks the tie by rolling one back whole, so
            # running it again is safe: it answers `duplicate` for what the winner stored.
            if attempt == _DEADLOCK_ATTEMPTS - 1 or getattr(exc.__cause__, "sqlstate", None) != (
                _DEADLOCK
            ):
                raise
            # Several overlapping batches can deadlock again at once if they all retry at
            # once (seen with five on a loaded CI machine): wait a little, a random while,
            # longer each time, so the winners commit first.
            logger.info(
                "ingest: deadlock with an overlapping batch; storing again (%d)", attempt + 1
            )
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # noqa: S311 - not a secret
    metrics.record_ingest(source.name, final, time.perf_counter() - started)
    return final


_DEADLOCK = "40P01"
_DEADLOCK_ATTEMPTS = 6


def feedback_admit_batch() -> None:
    """Raise 429 (code `backlog`, Retry-After) while the events already stored would take the
    workers more than INGEST_BACKLOG_SECONDS to clear (0 turns this off). Fewer than
    INGEST_BACKLOG_MIN_EVENTS waiting, or no known clearing rate (no worker has judged anything
    lately, say, because none runs), admits: storing is never given up for a guess; the
    reconciler judges what waits once a worker is back."""
    limit = settings.INGEST_BACKLOG_SECONDS
    if not limit:
        return
    try:
        waiting, rate = signals.pipeline_backlog.call()
    except Exception:  # noqa: BLE001 - admission is advice; the event log is what matters
        logger.warning("pipeline backlog unknown; batch admitted", exc_info=True)
        return
    if waiting < settings.INGEST_BACKLOG_MIN_EVENTS or not rate:
        return
    behind = waiting / rate
    if behind <= limit:
        return
    metrics.BATCHES_DEFERRED.inc()
    retry = min(60, max(1, math.ceil(behind - limit)))
    raise ApplicationError(
        f"The workers are {behind:.0f} s behind ({waiting:,} events wait for a verdict); "
        f"batches are accepted again below {limit} s. Nothing was stored: send it again "
        "after Retry-After.",
        code="backlog",
        status_code=http.HTTP_429_TOO_MANY_REQUESTS,
        headers={"Retry-After": str(retry)},
    )


def _rate_limits_begin(*, key: ApiKey, source: Source, items: list[Any]) -> ratelimit.PendingCheck:
    """Charge the request to the key and its raters (the answer is read later)."""
    raters = [
        item.get("rater")
        for item in items
        if isinstance(item, dict) and isinstance(item.get("rater"), str)
    ]
    return ratelimit.check_request_begin(
        key_id=key.pk,
        key_limit=source.rate_limit_per_minute,
        cost=len(items),
        source_id=source.pk,
        rater_limit=source.rater_rate_limit_per_minute,
        raters=raters,
    )


def _rate_limit_refusals(
    checked: tuple[ratelimit.Verdict, dict[str, int], int], *, source: Source, items: list[Any]
) -> dict[int, ItemResult]:
    """From the rate limits' answer: raise 429 when the key is over its limit, else answer the
    items of raters over theirs (by index): the first ones in request order fit, the rest are
    refused."""
    limit = source.rate_limit_per_minute
    verdict, fits, retry_after = checked
    if not verdict.allowed:
        message = (
            f"This batch has {len(items)} events, more than this key's limit of {limit} per "
            "minute: split it; nothing was stored."
            if len(items) > limit
            else f"This key is over its limit of {limit} events per minute; nothing was stored."
        )
        raise ApplicationError(
            message,
            code="rate_limited",
            status_code=http.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(verdict.retry_after)},
        )
    if not fits:
        return {}
    message = (
        f"this rater is over the source's limit of {source.rater_rate_limit_per_minute} events "
        f"per minute; retry in {retry_after} s"
    )
    seen: dict[str, int] = {}
    refused: dict[int, ItemResult] = {}
    for index, item in enumerate(items):
        rater = item.get("rater") if isinstance(item, dict) else None
        if not isinstance(rater, str) or rater not in fits:
            continue
        seen[rater] = seen.get(rater, 0) + 1
        if seen[rater] > fits[rater]:
            client_id = item.get("id")
            refused[index] = ItemResult(
                index,
                ERROR,
                client_id=client_id if isinstance(client_id, str) else None,
                code="rate_limited",
                errors={"rater": [message]},
                retry_after=retry_after,
            )
    return refused


def _prepare_all(*, source: Source, items: list[Any]) -> list[_Row | ItemResult]:
    """Each item validated, redacted and serialized (a row to insert), or its item error."""
    served = _served_answers(items)
    return [_prepare(index, item, source=source, served=served) for index, item in enumerate(items)]


def _store(
    *,
    source: Source,
    items: list[Any],
    client_ip: str,
    refused: dict[int, ItemResult],
    prepared: list[_Row | ItemResult],
) -> list[ItemResult]:
    ip = ip_hash(client_ip) if client_ip else ""
    results: list[ItemResult | None] = [None] * len(items)
    rows: list[_Row] = []
    first_of: dict[str, _Row] = {}
    repeats: list[tuple[int, str]] = []
    for index, ready in enumerate(prepared):
        if index in refused:
            results[index] = refused[index]
            continue
        # A copy: linking revisions writes to the row, and a retried store starts afresh.
        prepared_item = ready if isinstance(ready, ItemResult) else replace(ready)
        if isinstance(prepared_item, ItemResult):
            results[index] = prepared_item
        elif prepared_item.client_id in first_of:  # the same id twice in one batch: a retry
            repeats.append((index, prepared_item.client_id))
        else:
            first_of[prepared_item.client_id] = prepared_item
            rows.append(prepared_item)
    revising = any(row.supersedes for row in rows)  # no query unless an item revises one
    if revising:
        rows = _resolve_revisions(source, rows, first_of, results)

    # On PostgreSQL the insert is one statement, atomic by itself: outside a caller's transaction
    # it runs in autocommit, which saves a request the BEGIN and COMMIT round trips (on_commit
    # then runs at once, after the insert committed). Inside one it still gets a savepoint, so
    # that a failed insert (a deadlock, say) leaves the caller's transaction usable.
    # A revision whose event is earlier in the same request is inserted in a later statement:
    # the request's statements then share one transaction.
    own_transaction = connection.vendor != "postgresql" or connection.in_atomic_block or revising
    with transaction.atomic() if own_transaction else nullcontext():
        if revising:
            inserted = _insert_in_order(source.pk, rows, ip)
        else:
            inserted = _insert(source.pk, rows, ip) if rows else {}
        missing = [row.client_id for row in rows if row.client_id not in inserted]
        existing = (
            dict(
                Event.objects.filter(source=source, client_id__in=missing).values_list(
                    "client_id", "id"
                )
            )
            if missing
            else {}
        )
        new_ids = list(inserted.values())
        if new_ids:
            # robust: the events are stored whatever the broker does; the answer is the truth,
            # and the periodic drain and the reconciler find what a lost hint left undone.
            source_id = source.pk
            transaction.on_commit(lambda: _after_commit(source_id, new_ids), robust=True)

    for row in rows:
        if row.client_id in inserted:
            results[row.index] = ItemResult(
                row.index, row.status, id=inserted[row.client_id], client_id=row.client_id
            )
        else:
            results[row.index] = ItemResult(
                row.index, DUPLICATE, id=existing.get(row.client_id), client_id=row.client_id
            )
    for index, client_id in repeats:
        original = results[first_of[client_id].index]
        assert original is not None
        if original.status == ERROR:  # the first of them may not revise what it names
            results[index] = ItemResult(
                index, ERROR, client_id=client_id, code=original.code, errors=original.errors
            )
        else:
            results[index] = ItemResult(index, DUPLICATE, id=original.id, client_id=client_id)
    return [result for result in results if result is not None]


def _resolve_revisions(
    source: Source,
    rows: list[_Row],
    first_of: dict[str, _Row],
    results: list[ItemResult | None],
) -> list[_Row]:
    """Link each row that revises an earlier event (`supersedes`) to it, with one query for all
    their targets; answer the rows that may not revise theirs (an item error, nothing stored):
    no such event in this source, another rater's event, or an event already revised. The
    target may be an earlier item of the same request (linked at insert). Returns the rows that
    stay."""
    targets = {row.supersedes for row in rows if row.supersedes}
    stored = {
        client_id: (pk, rater, revised_by)
        for client_id, pk, rater, revised_by in Event.objects.filter(
            source=source, client_id__in=targets
        ).values_list("client_id", "id", "rater_hash", "superseded_by__client_id")
    }
    claimed: dict[str, str] = {}  # target client id -> the client id of the row revising it
    failed: set[str] = set()
    kept: list[_Row] = []
    for row in rows:
        target = row.supersedes
        if not target:
            kept.append(row)
            continue
        error = ""
        if target in stored:
            pk, rater, revised_by = stored[target]
            if rater != row.rater_hash:
                error = "names another rater's event: a rater revises only its own feedback"
            elif revised_by is not None and revised_by != row.client_id:
                error = _already_revised(source, target)
            row.supersedes_id = pk
        elif target in first_of and target not in failed and first_of[target].index < row.index:
            if first_of[target].rater_hash != row.rater_hash:
                error = "names another rater's event: a rater revises only its own feedback"
        else:
            error = (
                f"names no event of this source: no event (nor an earlier item of this "
                f"request) has the id {target!r}"
            )
        if not error and claimed.setdefault(target, row.client_id) != row.client_id:
            error = (
                f"names an event that item {first_of[claimed[target]].index} of this request "
                "already revises: revise the latest"
            )
        if error:
            results[row.index] = ItemResult(
                row.index,
                ERROR,
                client_id=row.client_id,
                code="invalid",
                errors={"supersedes": [error]},
            )
            failed.add(row.client_id)
        else:
            kept.append(row)
    return kept


def _already_revised(source: Source, target: str) -> str:
    """The error for a revision of an event that is already revised, naming the latest revision
    (the error path only: it walks the chain one query a link)."""
    event = Event.objects.filter(source=source, client_id=target).only("id").first()
    latest = event
    while latest is not None:
        newer = Event.objects.filter(supersedes=latest).only("id").first()
        if newer is None:
            break
        latest = newer
    assert latest is not None
    return f"names an event that is already revised: revise the latest, event {latest.pk}"


def _insert_in_order(source_id: int, rows: list[_Row], ip: str) -> dict[str, int]:
    """Insert ROWS so that a revision follows the event it revises when both are in the
    request (the target is always the earlier item): each pass inserts the rows whose target is
    stored, and links the next pass's to what it inserted."""
    inserted: dict[str, int] = {}
    pending = rows
    while pending:
        ready = [r for r in pending if r.supersedes_id is not None or not r.supersedes]
        waiting = [r for r in pending if r.supersedes_id is None and r.supersedes]
        if ready:
            inserted.update(_insert(source_id, ready, ip))
        later = {r.client_id for r in waiting}  # targets that wait for a later pass themselves
        unlinked = {r.supersedes for r in waiting} - inserted.keys() - later
        # An earlier item that another request stored first (a race): it is stored all the same.
        found = (
            dict(
                Event.objects.filter(source_id=source_id, client_id__in=unlinked).values_list(
                    "client_id", "id"
                )
            )
            if unlinked
            else {}
        )
        for row in waiting:
            row.supersedes_id = inserted.get(row.supersedes) or found.get(row.supersedes)
        pending = [r for r in waiting if r.supersedes_id is not None or r.supersedes in later]
    return inserted


def _after_commit(source_id: int, event_ids: list[int]) -> None:
    """New events are in the log: hint the workers (normalize here; the apps above connect
    `events_stored`, quality to judge them)."""
    from config.celery import send_hint  # the project's Celery app, wired above every app

    try:
        send_hint("feedback.normalize_pending")
    finally:
        signals.send_events_stored(source_id=source_id, event_ids=event_ids)


def _insert(source_id: int, rows: list[_Row], ip: str) -> dict[str, int]:
    """Insert ROWS, skipping client ids the source already has; return client_id → new id."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        return _insert_postgres(source_id, rows, ip, now)
    return _insert_generic(source_id, rows, ip, now)


_COLUMNS = (
    "client_id, type, status, payload, rater_hash, model, checkpoint, consent, licence, "
    "redactions, ip_hash, occurred_at, supersedes_id, received_at, source_id"
)


def _insert_postgres(source_id: int, rows: list[_Row], ip: str, now: datetime) -> dict[str, int]:
    # One round trip for the whole batch: arrays in, unnest, skip conflicts, ids back. The
    # arrays go as binary parameters (%b) bound on the server: no quoting and escaping of a
    # megabyte of text in Python. One event (most single-event requests) takes a plain VALUES
    # row instead: PostgreSQL plans it in a third of the time, which is most of its cost there.
    if len(rows) == 1:
        return _insert_postgres_one(source_id, rows[0], ip, now)
    sql = f"""
        INSERT INTO feedback_event ({_COLUMNS})
        SELECT c, t, s, p::jsonb, r, m, k, cn, l, rd::jsonb, %s, o, sp, %s, %s
        FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[],
                    %b::text[], %b::bool[], %b::text[], %b::text[], %b::timestamptz[],
                    %b::bigint[])
             AS u(c, t, s, p, r, m, k, cn, l, rd, o, sp)
        ON CONFLICT (source_id, client_id) DO NOTHING
        RETURNING client_id, id
    """  # noqa: S608 - _COLUMNS is a constant; every value is a parameter
    params = [
        ip,
        now,
        source_id,
        [r.client_id for r in rows],
        [r.type for r in rows],
        [r.status for r in rows],
        [r.payload.decode() for r in rows],
        [r.rater_hash for r in rows],
        [r.model for r in rows],
        [r.checkpoint for r in rows],
        [r.consent for r in rows],
        [r.licence for r in rows],
        [r.redactions.decode() for r in rows],
        [r.occurred_at for r in rows],
        [r.supersedes_id for r in rows],
    ]
    return _run_insert(sql, params)


def _insert_postgres_one(source_id: int, row: _Row, ip: str, now: datetime) -> dict[str, int]:
    sql = f"""
        INSERT INTO feedback_event ({_COLUMNS})
        VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s)
        ON CONFLICT (source_id, client_id) DO NOTHING
        RETURNING client_id, id
    """  # noqa: S608 - _COLUMNS is a constant; every value is a parameter
    params = [
        row.client_id,
        row.type,
        row.status,
        row.payload.decode(),
        row.rater_hash,
        row.model,
        row.checkpoint,
        row.consent,
        row.licence,
        row.redactions.decode(),
        ip,
        row.occurred_at,
        row.supersedes_id,
        now,
        source_id,
    ]
    return _run_insert(sql, params)


def _run_insert(sql: str, params: list[Any]) -> dict[str, int]:
    """Run an insert that skips existing ids; its rows as client_id → id.

    Outside a transaction the insert is its own health check: Django's (a `SELECT 1` round trip
    before a request's first query, with CONN_HEALTH_CHECKS) cost a single-event request about
    8 % of its web-tier CPU (side by side, docs/benchmarks.md). Where the reused connection
    turns out broken (the server restarted, a proxy dropped it), it is replaced and the insert
    runs once more: an insert that skips existing ids may be repeated, and a row that the lost
    attempt did commit is then answered as a duplicate with its id, never stored twice. Inside
    a transaction (a failed statement ends it) Django's check runs first, as before."""
    unchecked = (
        connection.connection is not None
        and connection.health_check_enabled
        and not connection.health_check_done
        and not connection.in_atomic_block
    )
    if unchecked:
        connection.health_check_done = True  # the insert is the check
    try:
        with _server_binding_cursor() as cursor:
            cursor.execute(sql, params)
            return dict(cursor.fetchall())
    except (OperationalError, InterfaceError):
        if not unchecked or connection.is_usable():  # Django's check, on the error path only
            raise
        logger.warning("ingest: the database connection was broken; inserting on a new one")
        connection.close()
    with _server_binding_cursor() as cursor:
        cursor.execute(sql, params)
        return dict(cursor.fetchall())


def _server_binding_cursor() -> Any:
    """A Django cursor (health check, execute wrappers, query log, error mapping, as
    connection.cursor() gives) over a psycopg cursor that binds parameters on the server;
    Django's own cursors bind on the client."""
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection._prepare_cursor(ServerBindingCursor(connection.connection))


def _insert_generic(source_id: int, rows: list[_Row], ip: str, now: datetime) -> dict[str, int]:
    # SQLite (embedded): one statement per row, still one transaction; RETURNING needs 3.35+.
    sql = f"""
        INSERT INTO feedback_event ({_COLUMNS})
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (source_id, client_id) DO NOTHING
        RETURNING id
    """  # noqa: S608 - _COLUMNS is a constant; every value is a parameter
    adapt = connection.ops.adapt_datetimefield_value
    inserted: dict[str, int] = {}
    with connection.cursor() as cursor:
        for r in rows:
            cursor.execute(
                sql,
                [
                    r.client_id,
                    r.type,
                    r.status,
                    r.payload.decode(),
                    r.rater_hash,
                    r.model,
                    r.checkpoint,
                    r.consent,
                    r.licence,
                    r.redactions.decode(),
                    ip,
                    adapt(r.occurred_at),
                    r.supersedes_id,
                    adapt(now),
                    source_id,
                ],
            )
            found = cursor.fetchone()
            if found:
                inserted[r.client_id] = found[0]
    return inserted
