"""manage.py serve_base [BASE_MODEL] [--alias NAME]

Serve a registered base model as it is (no adapter): its base checkpoint is registered and
published, and --alias points an alias at it. The gateway (/v1/chat/completions) then answers
`model: <alias>`, `model: base-<name>` or simply `model: <name>`, before any training."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.exceptions import ApplicationError
from apps.registry.models import BaseModel
from apps.registry.selectors import base_model_find
from apps.registry.services import base_model_serve


class Command(BaseCommand):
    help = "Serve a base model without an adapter (default: the default base model)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("base_model", nargs="?", default="", help="Name, model id or id.")
        parser.add_argument("--alias", default="", help="Point this alias at the base model.")

    def handle(self, *args: Any, **options: Any) -> None:
        base = base_model_find(options["base_model"] or None)
        if base is None:
            known = ", ".join(BaseModel.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"no base model {options['base_model']!r}; known: {known}")
        try:
            checkpoint = base_model_serve(base_model=base, alias=options["alias"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        names = [checkpoint.name, base.name] + ([options["alias"]] if options["alias"] else [])
        self.stdout.write(
            f"serving {base.model_id} without an adapter as checkpoint {checkpoint.name}; "
            f"ask the gateway for model {' or '.join(repr(n) for n in names)}"
        )
