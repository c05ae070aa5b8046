from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from apps.feedback.models import Event
from apps.feedback.services.normalize import feedback_normalized_rebuild, feedback_pending_normalize


class Command(BaseCommand):
    help = (
        "Derive interactions, ratings and comparisons from the raw event log: for events that "
        "have none yet (after the worker was down), or --rebuild all of them from scratch."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--rebuild", action="store_true", help="delete every derived row and derive again"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        total = (
            Event.objects.count()
            if options["rebuild"]
            else Event.objects.filter(interactions__isnull=True).count()
        )
        with tqdm(total=total, unit="event", disable=not sys.stderr.isatty()) as bar:
            run = feedback_normalized_rebuild if options["rebuild"] else feedback_pending_normalize
            done = run(progress=bar.update)
        self.stdout.write(f"normalized {done} event(s)")
