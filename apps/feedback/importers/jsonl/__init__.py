"""`--format jsonl`: events in Sinkhole's own API v1 schema."""

from __future__ import annotations

from apps.feedback.importers.base import Importer
from apps.feedback.importers.jsonl.reader import read

IMPORTER = Importer(
    name="jsonl",
    description="Sinkhole's own API v1 events, one per line (or a JSON array of them)",
    read_stream=read,
)
