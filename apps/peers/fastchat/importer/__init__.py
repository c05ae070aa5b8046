"""`--format fastchat`: LMSYS FastChat / Chatbot Arena battles and raw vote logs."""

from __future__ import annotations

from apps.feedback.importers.base import Importer
from apps.peers.fastchat.importer.reader import read

IMPORTER = Importer(
    name="fastchat",
    description="FastChat / Chatbot Arena battles (model_a, model_b, winner, judge) or raw vote logs",
    read_stream=read,
)
