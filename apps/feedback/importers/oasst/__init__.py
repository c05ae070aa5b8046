"""`--format oasst`: OpenAssistant message trees."""

from __future__ import annotations

from apps.feedback.importers.base import Importer
from apps.feedback.importers.oasst.reader import read

IMPORTER = Importer(
    name="oasst",
    description="OpenAssistant message trees (one tree per line); sibling ranks become rankings",
    read_stream=read,
)
