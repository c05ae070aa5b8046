"""manage.py find_unreadable_events

Lists the stored events that hold values no reader can carry (a timestamp outside Python's
datetime range, a number beyond 64 bits): rows an older Sinkhole let in before validation
bounded them. The log is append-only, so they are not edited: reads show them flagged
(`unreadable` in the API, a note on the event page) and never fail on them."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.feedback.selectors import unreadable_events


class Command(BaseCommand):
    help = "List stored events whose values no reader can carry (read-only)."

    def handle(self, *args: Any, **options: Any) -> None:
        found = unreadable_events()
        for event_id, problems in found:
            self.stdout.write(f"event {event_id}: {'; '.join(problems)}")
        self.stdout.write(f"{len(found)} unreadable event(s)")
