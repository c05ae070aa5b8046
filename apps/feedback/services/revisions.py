"""Feedback that changes under a stable id: an importer whose records keep their id while the
user changes their mind (an Open WebUI feedback record whose rating or comment was edited)
turns each change into a revision of the event stored before, instead of a `duplicate` that
loses it.

`events_as_revisions` rewrites a batch before `feedback_ingest`: an event whose id the source
already has, and whose judgement (rating, score, choice, ranking, edit, reason, comment, tags)
differs from the latest stored revision's, gets the next revision's id (`<id>:r2`, `<id>:r3`,
as Langfuse score changes get) and `supersedes` naming that latest revision; an unchanged one
takes the latest revision's id, so that the ingest answers it `duplicate` and re-importing a
file adds nothing. A record no newer than the latest revision (`metadata.updated_at`, where the
importer sets it) never revises it: an old export imported again does not undo a change."""

from __future__ import annotations

from typing import Any

from apps.feedback.models import Event
from apps.feedback.redaction import redact_event
from apps.sources.models import Source

# What the rater said; a change in any of them is a new revision. Texts and metadata are not
# judgements: a later export that carries the chat's text is the same feedback.
JUDGEMENT = ("type", "rating", "score", "choice", "ranking", "edited", "reason", "comment", "tags")


def revision_id(base: str, number: int) -> str:
    """The client id of revision NUMBER (1 is the original) of the event BASE."""
    return base if number <= 1 else f"{base}:r{number}"


def events_as_revisions(*, source: Source, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """EVENTS with the ids of those that change an event SOURCE already has rewritten as
    revisions (see the module). Events without a string id pass unchanged. Queries: one for
    the batch, plus one per level of revision chains that exist already."""
    bases = {e["id"] for e in events if isinstance(e, dict) and isinstance(e.get("id"), str)}
    if not bases:
        return events
    latest = _latest_revisions(source, bases)
    out = []
    for event in events:
        base = event.get("id") if isinstance(event, dict) else None
        if not isinstance(base, str) or base not in latest:
            out.append(event)
            continue
        client_id, number, said, updated = latest[base]
        mine = _judgement(event, redact=source.redact_pii)
        newer = _updated_at(event)
        if mine == said or (updated is not None and newer is not None and newer <= updated):
            out.append({**event, "id": client_id})  # the same feedback: a duplicate
            continue
        revision = {**event, "id": revision_id(base, number + 1), "supersedes": client_id}
        latest[base] = (revision["id"], number + 1, mine, newer)  # a later copy in the batch
        out.append(revision)
    return out


def _latest_revisions(
    source: Source, bases: set[str]
) -> dict[str, tuple[str, int, dict[str, Any], Any]]:
    """For each of BASES that SOURCE has: (client id, revision number, judgement, updated_at)
    of its latest revision, found by following `superseded_by` from the original."""
    found = list(
        Event.objects.filter(source=source, client_id__in=bases).values_list(
            "client_id", "id", "payload", "superseded_by__id"
        )
    )
    latest: dict[str, tuple[str, int, dict[str, Any], Any]] = {}
    chains: dict[int, tuple[str, int]] = {}  # newer event id -> (base, its revision number)
    for client_id, _pk, payload, newer in found:
        latest[client_id] = (client_id, 1, _judgement(payload), _updated_at(payload))
        if newer is not None:
            chains[newer] = (client_id, 2)
    while chains:
        step: dict[int, tuple[str, int]] = {}
        for pk, client_id, payload, newer in Event.objects.filter(pk__in=chains).values_list(
            "id", "client_id", "payload", "superseded_by__id"
        ):
            base, number = chains[pk]
            latest[base] = (client_id, number, _judgement(payload), _updated_at(payload))
            if newer is not None:
                step[newer] = (base, number + 1)
        chains = step
    return latest


def _judgement(event: dict[str, Any], *, redact: bool = False) -> dict[str, Any]:
    said = {key: event[key] for key in JUDGEMENT if event.get(key) not in (None, [], "")}
    if redact:
        # The stored payload was redacted on the way in: compare like with like.
        said, _ = redact_event(said)
    return said


def _updated_at(event: Any) -> Any:
    metadata = event.get("metadata") if isinstance(event, dict) else None
    value = metadata.get("updated_at") if isinstance(metadata, dict) else None
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None
