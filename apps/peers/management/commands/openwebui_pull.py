"""`manage.py openwebui_pull [NAME] [--full]`: pull Open WebUI connectors' feedback exports
now, in this process (the schedule does the same through Celery)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.peers.models import OpenWebUIConnector
from apps.peers.openwebui.services import openwebui_connector_pull


class Command(BaseCommand):
    help = "Pull the feedback export of one Open WebUI connector (or of every active one) now."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", help="the connector; all active ones if left out")
        parser.add_argument(
            "--full",
            action="store_true",
            help="read every record, not only those changed since the last pull",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        connectors = OpenWebUIConnector.objects.select_related("source")
        if options["name"]:
            connectors = connectors.filter(name=options["name"])
            if not connectors:
                known = (
                    ", ".join(OpenWebUIConnector.objects.values_list("name", flat=True)) or "none"
                )
                raise CommandError(
                    f"no Open WebUI connector named {options['name']!r} (known: {known})"
                )
        else:
            connectors = connectors.filter(is_active=True)
            if not connectors:
                raise CommandError(
                    "no active Open WebUI connector; add one with openwebui_connector"
                )
        failed = []
        for connector in connectors:
            result = openwebui_connector_pull(connector=connector, full=options["full"])
            self.stdout.write(result.line())
            if not result.ok:
                failed.append(connector.name)
        if failed:
            raise CommandError(f"the pull failed for {', '.join(failed)}")
