from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.sources.models import ApiKey
from apps.sources.services import api_key_revoke, hash_key


class Command(BaseCommand):
    help = "Revoke one API key, given whole or by the prefix that `list_keys` and the admin show."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key", help="the whole key, or its 10-character prefix")

    def handle(self, *args: Any, **options: Any) -> None:
        raw = options["key"]
        matches = list(ApiKey.objects.filter(key_hash=hash_key(raw))) or list(
            ApiKey.objects.filter(prefix=raw[:10], revoked_at__isnull=True)
        )
        if not matches:
            raise CommandError(f"No active key matches {raw[:10]}…")
        if len(matches) > 1:
            raise CommandError(
                f"{len(matches)} keys share the prefix {raw[:10]}; give the whole key"
            )
        key = api_key_revoke(key=matches[0])
        self.stdout.write(f"Revoked {key.prefix}… of source {key.source.name} ({key.kind}).")
