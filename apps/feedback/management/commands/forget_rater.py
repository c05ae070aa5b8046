"""`manage.py forget_rater RATER [--hashed] [--source NAME] [--note TEXT] [--json]`: forget a rater.

RATER is the rater id as the front-end sent it; it is hashed the way ingest hashes it (per
source: without `--source` it is hashed for every source). With `--hashed`, RATER is a stored
rater hash. Their events stay in the append-only log but are tombstoned: later dataset versions
leave them out, and the versions already built with them are flagged."""

from __future__ import annotations

import json
import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.feedback.services.forgetting import rater_forget, rater_hashes_for
from apps.sources.models import Source

_HASH = re.compile(r"^[0-9a-f]{64}$")


class Command(BaseCommand):
    help = (
        "Tombstone a rater's events: later datasets leave them out; versions with them are flagged."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "rater", help="the rater id as sent (or, with --hashed, its stored hash)"
        )
        parser.add_argument("--hashed", action="store_true", help="RATER is a stored rater hash")
        parser.add_argument(
            "--source", help="the source the rater id belongs to (default: every source)"
        )
        parser.add_argument("--note", default="", help="why (kept with the tombstone)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        rater: str = options["rater"].strip()
        if not rater:
            raise CommandError("give a rater id")
        if options["hashed"]:
            if not _HASH.match(rater):
                raise CommandError("a rater hash is 64 lowercase hex characters")
            hashes = [rater]
        else:
            source = None
            if options["source"]:
                source = Source.objects.filter(name=options["source"]).first()
                if source is None:
                    raise CommandError(f"no source named {options['source']!r}")
            hashes = rater_hashes_for(rater, source=source)
            if not hashes:
                raise CommandError("there are no sources, so no rater to forget")
        result = rater_forget(rater_hashes=hashes, note=options["note"])
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict()))
            return
        versions = ", ".join(map(str, result.flagged_versions)) or "none"
        self.stdout.write(
            f"forgot {len(hashes)} rater hash(es): {result.events:,} events tombstoned; "
            f"dataset versions flagged: {versions}"
        )
