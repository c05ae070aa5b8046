"""Pulling an Open WebUI server's feedback export into Sinkhole, incrementally.

Each pull streams the whole export (Open WebUI has no "since" filter), skips the records older
than the connector's watermark (the newest `updated_at` a finished pull saw) without mapping
them, maps the rest with the `openwebui` importer's reader (the same mapping as
`import_feedback --format openwebui`, so a file import and a pull never store one feedback
twice) and ingests them in batches. Records exactly at the watermark are read again, because
new feedback can share the second of the last pull; their deterministic event ids make that a
harmless `duplicate`. The watermark moves only when the whole export was read, so a pull cut
short is simply done again. Two pulls of one connector never overlap (`running_since`)."""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from apps.feedback.importers.base import Record, read_json_records
from apps.feedback.services.importing import ImportSummary, feedback_batch_ingest
from apps.peers.models import OpenWebUIConnector
from apps.peers.openwebui.client import OpenWebUIError, open_export
from apps.peers.openwebui.importer import reader as openwebui_reader
from apps.sources.models import Source

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
STALE_RUN = timedelta(hours=1)  # a pull "running" longer than this has died; take over


@dataclass
class PullResult:
    """What one pull did: records read from the export, those skipped as older than the
    watermark (`unchanged`), the import counts, and the error that stopped it, if any."""

    connector: str
    summary: ImportSummary
    records: int = 0
    unchanged: int = 0
    watermark: int | None = None
    error: str = ""
    busy: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error and not self.busy

    def line(self) -> str:
        if self.busy:
            return f"{self.connector}: a pull is already running; not started"
        text = (
            f"{self.connector}: {self.records} records, {self.unchanged} unchanged since the "
            f"last pull; {self.summary.line()}"
        )
        return f"{text}; FAILED: {self.error}" if self.error else text

    def as_dict(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "records": self.records,
            "unchanged": self.unchanged,
            "watermark": self.watermark,
            "error": self.error,
            "busy": self.busy,
            **self.summary.as_dict(),
        }


def openwebui_connector_save(
    *,
    name: str,
    source: Source,
    base_url: str,
    token: str | None = None,
    interval_minutes: int = 15,
    is_active: bool = True,
    connector: OpenWebUIConnector | None = None,
) -> OpenWebUIConnector:
    """Create a connector, or change CONNECTOR; a TOKEN of None keeps the stored one."""
    if connector is None:
        connector = OpenWebUIConnector()
    connector.name = name
    connector.source = source
    connector.base_url = base_url.rstrip("/")
    if token is not None:
        connector.token = token.strip()
    if connector.interval_minutes != interval_minutes:
        connector.next_run_at = None  # a new interval starts now
    connector.interval_minutes = interval_minutes
    connector.is_active = is_active
    connector.full_clean()
    connector.save()
    return connector


def openwebui_connector_pull(
    *, connector: OpenWebUIConnector, full: bool = False, batch_size: int = BATCH_SIZE
) -> PullResult:
    """Pull CONNECTOR's export once (FULL: every record, ignoring the watermark), record the
    outcome on the connector, and return it. A remote failure is recorded and returned, not
    raised; a pull already running elsewhere makes this one a no-op (`busy`)."""
    started = time.perf_counter()
    result = PullResult(
        connector.name, ImportSummary(format="openwebui", source=connector.source.name)
    )
    now = timezone.now()
    claimed = OpenWebUIConnector.objects.filter(
        Q(running_since__isnull=True) | Q(running_since__lt=now - STALE_RUN), pk=connector.pk
    ).update(running_since=now)
    if not claimed:
        result.busy = True
        return result
    finished = False
    try:
        _pull(connector, result, full=full, batch_size=batch_size)
        finished = True
    except OpenWebUIError as exc:
        result.error = str(exc)
    except Exception as exc:
        result.error = f"unexpected error: {type(exc).__name__}: {exc}"
        raise
    finally:
        result.seconds = time.perf_counter() - started
        result.summary.seconds = result.seconds
        _record(connector, result, finished=finished)
        logger.info("openwebui pull", extra={"pull": result.as_dict()})
    return result


def _pull(
    connector: OpenWebUIConnector, result: PullResult, *, full: bool, batch_size: int
) -> None:
    watermark = None if full else connector.watermark
    newest = connector.watermark
    mapped: set[str] = set()

    def convert(record: Any, where: str) -> Any:
        nonlocal newest
        mapped.add(where)
        result.records += 1
        stamp = _stamp(record)
        if stamp is not None:
            newest = stamp if newest is None else max(newest, stamp)
            if watermark is not None and stamp < watermark:
                result.unchanged += 1
                return iter(())
        return openwebui_reader.convert(record, where)

    events: list[dict[str, Any]] = []
    places: list[str] = []
    summary = result.summary
    with open_export(connector.base_url, connector.token) as response:
        stream = io.BufferedReader(response)  # type: ignore[arg-type]
        if _first_byte(stream) != b"[":
            raise OpenWebUIError("the export is not a JSON array of feedback records")
        records = read_json_records(stream, convert)
        while True:
            try:
                record: Record = next(records)
            except StopIteration:
                break
            except (OSError, ValueError) as exc:
                raise OpenWebUIError(
                    f"the export broke off after {result.records} records: {exc}"
                ) from exc
            if record.event is not None:
                events.append(record.event)
                places.append(record.where)
                if len(events) >= batch_size:
                    feedback_batch_ingest(
                        source=connector.source,
                        events=events,
                        places=places,
                        summary=summary,
                        revisable=True,
                    )
                    events, places = [], []
            elif record.skipped is not None:
                summary.skip(f"{record.where}: {record.skipped}")
            elif record.where not in mapped:
                # The reader could not even parse this record: the answer is cut or garbled.
                feedback_batch_ingest(
                    source=connector.source,
                    events=events,
                    places=places,
                    summary=summary,
                    revisable=True,
                )
                raise OpenWebUIError(
                    f"the export is not valid JSON at {record.where}: {record.error}"
                )
            else:
                summary.reject(f"{record.where}: {record.error}")
    feedback_batch_ingest(
        source=connector.source, events=events, places=places, summary=summary, revisable=True
    )
    result.watermark = newest


def _first_byte(stream: io.BufferedReader) -> bytes:
    """The first byte that is not a byte-order mark or white space, left unread."""
    if stream.peek(3)[:3] == b"\xef\xbb\xbf":
        stream.read(3)
    while True:
        head = stream.peek(1)[:1]
        if head not in (b" ", b"\t", b"\r", b"\n"):
            return head
        stream.read(1)


def _stamp(record: Any) -> int | None:
    """The record's `updated_at` (else `created_at`) in epoch seconds."""
    if not isinstance(record, dict):
        return None
    for key in ("updated_at", "created_at"):
        value = record.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = int(value)
            return seconds // 1000 if seconds > 100_000_000_000 else seconds  # milliseconds
    return None


def _record(connector: OpenWebUIConnector, result: PullResult, *, finished: bool) -> None:
    """Write the pull's outcome on the connector (counters as increments, so that nothing
    another process wrote meanwhile is lost) and free it for the next pull."""
    summary = result.summary
    changes: dict[str, Any] = {
        "running_since": None,
        "last_run_at": timezone.now(),
        "last_imported": summary.imported,
        "last_duplicate": summary.duplicate,
        "last_rejected": summary.rejected,
        "total_imported": F("total_imported") + summary.imported,
        "total_runs": F("total_runs") + 1,
        "last_error": result.error,
    }
    if finished and not result.error:
        changes["last_success_at"] = changes["last_run_at"]
        if result.watermark is not None:
            changes["watermark"] = result.watermark
    OpenWebUIConnector.objects.filter(pk=connector.pk).update(**changes)
