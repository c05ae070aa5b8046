from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.sources.models import ApiKey, Source
from apps.sources.services import source_keys_rotate


class Command(BaseCommand):
    help = "Revoke a source's active keys and issue new ones (printed once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument(
            "--kind", choices=[k.value for k in ApiKey.Kind], help="only this kind of key"
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        source = Source.objects.filter(name=options["name"]).first()
        if source is None:
            raise CommandError(f"No source named {options['name']!r}")
        issued = source_keys_rotate(source=source, kind=options["kind"])
        keys = {f"{i.key.kind}_key": i.raw for i in issued}
        if options["json"]:
            self.stdout.write(json.dumps({"name": source.name, **keys}))
            return
        for name, raw in keys.items():
            self.stdout.write(f"  new {name.replace('_', ' ')}: {raw}")
