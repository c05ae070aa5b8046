"""Our own event schema (API v1), one event per line (or a JSON array of events, the body of a
batch POST). Events pass through as they are; the ingest validates them field by field. An event
without an `id` gets `jsonl:<hash of the event>` (`:n` on the n-th copy of a repeated event, so
every line is kept), and importing the file again adds nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

from apps.feedback.importers.base import Record, digest, number_repeats, read_json_records


def read(stream: BinaryIO) -> Iterator[Record]:
    return number_repeats(read_json_records(stream, convert), prefix="jsonl:")


def convert(value: Any, where: str) -> Iterator[Record]:
    if isinstance(value, dict) and value.get("id") is None:
        value = {**value, "id": f"jsonl:{digest(value)}"}
    yield Record(where, event=value)
