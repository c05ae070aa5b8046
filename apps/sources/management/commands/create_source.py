from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.sources.services import source_create


class Command(BaseCommand):
    help = "Create a source (one integration) and print its secret and publishable keys, once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="lower-case identifier, e.g. open-webui-prod")
        parser.add_argument("--description", default="")
        parser.add_argument(
            "--origin",
            action="append",
            default=[],
            dest="origins",
            help="a browser origin allowed to use the publishable key (repeatable)",
        )
        parser.add_argument(
            "--no-redact", action="store_true", help="opt this source out of PII redaction"
        )
        parser.add_argument(
            "--json", action="store_true", help='print {"name", "secret_key", "publishable_key"}'
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            source, secret, publishable = source_create(
                name=options["name"],
                description=options["description"],
                allowed_origins=options["origins"],
                redact_pii=not options["no_redact"],
            )
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            ) from exc
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "name": source.name,
                        "secret_key": secret.raw,
                        "publishable_key": publishable.raw,
                    }
                )
            )
            return
        self.stdout.write(
            f"Source {source.name!r} created. These keys are shown once; store them now."
        )
        self.stdout.write(f"  secret key (ingest + read, servers only): {secret.raw}")
        self.stdout.write(f"  publishable key (ingest from allowed origins): {publishable.raw}")
