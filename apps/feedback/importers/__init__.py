"""Feedback importers: one folder per input format, all the same shape. Each folder's
`__init__.py` exposes `IMPORTER` (an `Importer`: name, description, reader) and its `reader.py`
holds `read(stream)`, which yields `Record`s with API v1 event dicts, the JSON a front-end would
POST, one input record at a time.

The generic formats (HH-RLHF, OpenAssistant, JSONL) live here. A peer's own export format lives
in the peer's folder (`apps/peers/<peer>/importer/`) and is registered with `register` from the
peers app's `ready()`: feedback knows nothing above it.

Conventions every reader keeps (see `base.py`):
- ids are deterministic from the input (the record's own id, else a hash of the record), so
  importing a file twice adds nothing;
- text the input does not have (a battle file with names and outcomes only) is a placeholder in
  brackets, and `metadata.placeholders` names the fields that hold one;
- bad input is a `Record` with an `error`, input without feedback one with `skipped`; a reader
  never raises on a record.

`feedback_import` (apps/feedback/services/importing.py) feeds the events to `feedback_ingest`
in batches; `manage.py import_feedback` is the command line."""

from __future__ import annotations

from apps.feedback.importers.base import Importer, Record, open_input
from apps.feedback.importers.hh_rlhf import IMPORTER as HH_RLHF
from apps.feedback.importers.jsonl import IMPORTER as JSONL
from apps.feedback.importers.oasst import IMPORTER as OASST

FORMATS: dict[str, Importer] = {importer.name: importer for importer in (HH_RLHF, OASST, JSONL)}


def register(importer: Importer) -> None:
    """Make IMPORTER available as `--format NAME` (peers call this from their app's `ready()`)."""
    FORMATS[importer.name] = importer


class UnknownFormat(ValueError):
    """No importer has that name."""


def importer_for(name: str) -> Importer:
    """The importer for format NAME (`openwebui`, `fastchat`, `hh-rlhf`, `oasst`, `jsonl`)."""
    try:
        return FORMATS[name]
    except KeyError:
        raise UnknownFormat(
            f"unknown format {name!r}; known formats: {', '.join(FORMATS)}"
        ) from None


__all__ = [
    "FORMATS",
    "Importer",
    "Record",
    "UnknownFormat",
    "importer_for",
    "open_input",
    "register",
]
