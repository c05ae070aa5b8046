"""manage.py publish CHECKPOINT [--alias NAME] [--reason TEXT] [--json]

Publishes a checkpoint (by name or id): copies its adapter into the artifact store, loads it into
vLLM where VLLM_URL is set, and with --alias points that alias at it."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.exceptions import ApplicationError
from apps.registry import selectors, services


def _message(exc: ApplicationError) -> str:
    details = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.fields.items())
    return f"{exc.message} {details}".strip()


class Command(BaseCommand):
    help = "Publish a checkpoint to the artifact store (and vLLM), optionally moving an alias."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("checkpoint", help="Checkpoint name or id.")
        parser.add_argument("--alias", default="", help="Point this alias at it afterwards.")
        parser.add_argument("--reason", default="", help="Why (recorded with the alias move).")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            checkpoint = services.checkpoint_publish(
                checkpoint=selectors.checkpoint_get(options["checkpoint"]),
                alias=options["alias"],
                reason=options["reason"],
            )
        except ApplicationError as exc:
            raise CommandError(_message(exc)) from exc
        path = selectors.artifact_path(checkpoint)
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "checkpoint": checkpoint.name,
                        "status": checkpoint.status,
                        "uri": checkpoint.artifact_uri,
                        "path": path,
                        "alias": options["alias"] or None,
                    }
                )
            )
            return
        where = path or "(base model: no files)"
        self.stdout.write(f"published {checkpoint.name} → {where}")
        if options["alias"]:
            self.stdout.write(f"{options['alias']} → {checkpoint.name}")
