"""manage.py alias NAME CHECKPOINT [--reason TEXT]  |  alias NAME --rollback  |  alias [--list]

Points an alias (production, canary, any name) at a published checkpoint, rolls it back to where
it pointed before its last move, or lists the aliases. Every move is recorded."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.exceptions import ApplicationError
from apps.registry import selectors, services
from apps.registry.management.commands.publish import _message


class Command(BaseCommand):
    help = "Point an alias at a checkpoint, roll it back, or list aliases."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", help="The alias, e.g. production.")
        parser.add_argument("checkpoint", nargs="?", help="Checkpoint name or id (published).")
        parser.add_argument("--rollback", action="store_true", help="Move it back one step.")
        parser.add_argument("--reason", default="", help="Why (recorded with the move).")

    def handle(self, *args: Any, **options: Any) -> None:
        name, ref = options["name"], options["checkpoint"]
        if not name:
            for alias in selectors.alias_list():
                self.stdout.write(f"{alias.name} → {alias.checkpoint.name}")
            return
        try:
            if options["rollback"]:
                if ref:
                    raise CommandError("--rollback takes no checkpoint.")
                alias = services.alias_rollback(name=name, reason=options["reason"])
            elif ref:
                alias = services.alias_set(
                    name=name, checkpoint=selectors.checkpoint_get(ref), reason=options["reason"]
                )
            else:
                alias = selectors.alias_get(name)
        except ApplicationError as exc:
            raise CommandError(_message(exc)) from exc
        self.stdout.write(f"{alias.name} → {alias.checkpoint.name}")
