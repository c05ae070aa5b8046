"""`--format openwebui`: Open WebUI's feedback export (thumbs and arena votes)."""

from __future__ import annotations

from apps.feedback.importers.base import Importer
from apps.peers.openwebui.importer.reader import read

IMPORTER = Importer(
    name="openwebui",
    description="Open WebUI feedback export (Admin > Evaluations > Export): thumbs and arena votes",
    read_stream=read,
    revisable=True,  # a feedback id keeps its id while the user changes the rating
)
