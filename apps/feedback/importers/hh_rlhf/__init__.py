"""`--format hh-rlhf`: Anthropic HH-RLHF chosen/rejected transcript pairs."""

from __future__ import annotations

from apps.feedback.importers.base import Importer
from apps.feedback.importers.hh_rlhf.reader import read

IMPORTER = Importer(
    name="hh-rlhf",
    description="Anthropic HH-RLHF pairs: chosen/rejected transcripts (.jsonl or .jsonl.gz)",
    read_stream=read,
)
