"""feedback_import: a feedback file of a known format into the raw event log, through the same
`feedback_ingest` as the API (validation, PII redaction, rater hashing, idempotent insert), in
batches, streaming: the file is read one record at a time and at most one batch of events is held
in memory, whatever the file's size."""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import reset_queries

from apps.feedback.importers import importer_for, open_input
from apps.feedback.services.ingest import (
    ACCEPTED,
    DUPLICATE,
    QUARANTINED,
    ItemResult,
    feedback_ingest,
)
from apps.feedback.services.revisions import events_as_revisions
from apps.sources.models import Source

logger = logging.getLogger(__name__)

MAX_REASONS = 5
MAX_REASON_CHARS = 300


@dataclass
class ImportSummary:
    """What an import did. `imported` counts new events (`quarantined` of them held for review),
    `duplicate` events the source already had, `revised` new events that revise one stored
    before (a changed rating of a revisable format), `rejected` bad input and events that failed
    validation, `skipped` input that carries no feedback (e.g. a FastChat flag). The first
    reasons of each kind say where and why: "line 17: messages.0.role: …"."""

    format: str
    source: str
    imported: int = 0
    quarantined: int = 0
    revised: int = 0
    duplicate: int = 0
    rejected: int = 0
    skipped: int = 0
    first_reasons: list[str] = field(default_factory=list)
    first_skips: list[str] = field(default_factory=list)
    bytes_read: int = 0
    seconds: float = 0.0

    @property
    def events(self) -> int:
        return self.imported + self.duplicate + self.rejected

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.first_reasons) < MAX_REASONS:
            self.first_reasons.append(_cut(reason))

    def skip(self, reason: str) -> None:
        self.skipped += 1
        if len(self.first_skips) < MAX_REASONS:
            self.first_skips.append(_cut(reason))

    def line(self) -> str:
        """One line for people: `imported 297, duplicate 0, rejected 3 (line 17: …; …)`."""
        imported = f"imported {self.imported}"
        notes = [f"{self.quarantined} held for review"] if self.quarantined else []
        if self.revised:
            notes.append(f"{self.revised} revising an earlier event")
        if notes:
            imported += f" ({', '.join(notes)})"
        text = f"{imported}, duplicate {self.duplicate}, rejected {self.rejected}"
        if self.first_reasons:
            more = ", …" if self.rejected > len(self.first_reasons) else ""
            text += f" ({'; '.join(self.first_reasons)}{more})"
        if self.skipped:
            text += f", skipped {self.skipped} ({'; '.join(self.first_skips)}"
            text += ", …)" if self.skipped > len(self.first_skips) else ")"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "source": self.source,
            "imported": self.imported,
            "quarantined": self.quarantined,
            "revised": self.revised,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "skipped": self.skipped,
            "first_reasons": self.first_reasons,
            "first_skips": self.first_skips,
            "bytes_read": self.bytes_read,
            "seconds": round(self.seconds, 3),
        }


def feedback_import(
    *,
    source: Source,
    format: str,
    path: Path,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 1000,
) -> ImportSummary:
    """Import the feedback file PATH, of FORMAT (a name in `importers.FORMATS`), into SOURCE.

    Idempotent: event ids come from the input, so a second import of the same file counts every
    event as duplicate and stores nothing. Bad records never stop the import: they are counted as
    rejected with a reason, and their neighbours go on. No rate limits apply. PROGRESS, if given,
    is called with the number of bytes read from the file since its last call (the increments add
    up to the file's size, compressed size for gzip). Raises `UnknownFormat` and
    `FileNotFoundError` before touching anything."""
    importer = importer_for(format)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.perf_counter()
    summary = ImportSummary(format=importer.name, source=source.name)

    def read_bytes(count: int) -> None:
        summary.bytes_read += count
        if progress is not None:
            progress(count)

    events: list[Any] = []
    places: list[str] = []
    with open_input(path, on_read=read_bytes) as stream:
        records = importer.read_stream(stream)
        where = "the start"
        while True:
            try:
                record = next(records)
            except StopIteration:
                break
            except (OSError, EOFError, zlib.error, ValueError) as exc:
                # A cut-short or corrupt gzip file, bytes that are not UTF-8 inside a JSON array:
                # the reader cannot go on, but what came before stays imported.
                summary.reject(f"after {where}: the rest of the file could not be read ({exc})")
                break
            where = record.where
            if record.event is not None:
                events.append(record.event)
                places.append(record.where)
                if len(events) >= batch_size:
                    feedback_batch_ingest(
                        source=source,
                        events=events,
                        places=places,
                        summary=summary,
                        revisable=importer.revisable,
                    )
                    events, places = [], []
            elif record.skipped is not None:
                summary.skip(f"{record.where}: {record.skipped}")
            else:
                summary.reject(f"{record.where}: {record.error}")
        if events:
            feedback_batch_ingest(
                source=source,
                events=events,
                places=places,
                summary=summary,
                revisable=importer.revisable,
            )
    summary.seconds = time.perf_counter() - started
    logger.info("feedback import finished", extra={"import": summary.as_dict()})
    return summary


def feedback_batch_ingest(
    *,
    source: Source,
    events: list[Any],
    places: list[str],
    summary: ImportSummary,
    revisable: bool = False,
) -> None:
    """Store EVENTS (mapped by an importer's reader; PLACES says where each came from) through
    `feedback_ingest`, and count them into SUMMARY: new, duplicate, or rejected with a reason.
    Importers and connectors (Open WebUI pulls, FastChat follower, Langfuse) share it. With
    REVISABLE, an event that changes one the source has becomes its revision (`revisions`)."""
    if not events:
        return
    if revisable:
        events = events_as_revisions(source=source, events=events)
    results = feedback_ingest(source=source, items=events)
    for result, where, event in zip(results, places, events, strict=True):
        if result.status in (ACCEPTED, QUARANTINED):
            summary.imported += 1
            summary.quarantined += result.status == QUARANTINED
            summary.revised += isinstance(event, dict) and "supersedes" in event
        elif result.status == DUPLICATE:
            summary.duplicate += 1
        else:
            summary.reject(f"{where}: {_errors(result)}")
    if settings.DEBUG:  # DEBUG keeps every query's SQL, which for an import is the whole file
        reset_queries()


def _errors(result: ItemResult) -> str:
    if not result.errors:
        return result.code or "invalid"
    return "; ".join(f"{path}: {' '.join(messages)}" for path, messages in result.errors.items())


def _cut(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"
