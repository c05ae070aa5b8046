"""`manage.py openwebui_connector NAME --url URL --source SOURCE [--every MINUTES]`: add an Open
WebUI connector, or change one. The token is read from --token or, better (it stays out of the
process list and the shell history), from the OPENWEBUI_TOKEN environment variable."""

from __future__ import annotations

import os
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.peers.models import OpenWebUIConnector
from apps.peers.openwebui.services import openwebui_connector_save
from apps.sources.models import Source


class Command(BaseCommand):
    help = (
        "Add or change an Open WebUI connector (pulls that server's feedback export on a schedule)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="a short name, e.g. openwebui-prod")
        parser.add_argument(
            "--url", help="the Open WebUI server's root URL, e.g. https://chat.example.org"
        )
        parser.add_argument("--source", help="the Sinkhole source the feedback goes to")
        parser.add_argument("--token", help="an Open WebUI admin's API key (else $OPENWEBUI_TOKEN)")
        parser.add_argument(
            "--every", type=int, dest="interval", help="minutes between pulls (default 15)"
        )
        state = parser.add_mutually_exclusive_group()
        state.add_argument("--disable", action="store_true", help="stop pulling it")
        state.add_argument("--enable", action="store_true", help="pull it again")

    def handle(self, *args: Any, **options: Any) -> None:
        connector = (
            OpenWebUIConnector.objects.select_related("source").filter(name=options["name"]).first()
        )
        token = options["token"] or os.environ.get("OPENWEBUI_TOKEN") or None
        if connector is None and not (options["url"] and options["source"] and token):
            raise CommandError(
                "a new connector needs --url, --source and a token (--token or $OPENWEBUI_TOKEN)"
            )
        source = connector.source if connector else None
        if options["source"]:
            source = Source.objects.filter(name=options["source"]).first()
            if source is None:
                raise CommandError(
                    f"no source named {options['source']!r}; create it with create_source"
                )
        active = connector.is_active if connector else True
        if options["disable"] or options["enable"]:
            active = bool(options["enable"])
        try:
            saved = openwebui_connector_save(
                connector=connector,
                name=options["name"],
                source=source,
                base_url=options["url"] or connector.base_url,
                token=token,
                interval_minutes=options["interval"]
                or (connector.interval_minutes if connector else 15),
                is_active=active,
            )
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            ) from exc
        verb = "Changed" if connector else "Added"
        state = "active" if saved.is_active else "disabled"
        self.stdout.write(
            f"{verb} {saved.name}: {saved.base_url} → source {saved.source.name}, every "
            f"{saved.interval_minutes} min, token {saved.masked_token}, {state}."
        )
