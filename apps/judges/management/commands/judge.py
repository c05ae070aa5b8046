"""manage.py judge list [--json]
manage.py judge add NAME --kind reward_model|llm|rule [--checkpoint NAME] [--config JSON]
                         [--description TEXT] [--json]

Lists the registered judges (newest version of each) or registers one; registering a name again
with other settings makes its next version. Examples:

    manage.py judge add rm-harmless --kind reward_model --checkpoint run-12-rm
    manage.py judge add gateway-judge --kind llm \\
        --config '{"base_url": "http://127.0.0.1:8000/v1", "model": "production", "api_key_env": "SINKHOLE_JUDGE_KEY"}'
    manage.py judge add longer --kind rule --config '{"rule": "length"}'"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.exceptions import ApplicationError
from apps.judges import selectors, services
from apps.judges.models import Judge
from apps.registry.selectors import checkpoint_get


def judge_data(judge: Judge) -> dict[str, Any]:
    return {
        "id": judge.pk,
        "name": judge.name,
        "version": judge.version,
        "kind": judge.kind,
        "checkpoint": judge.checkpoint.name if judge.checkpoint else None,
        "config": judge.config,
        "description": judge.description,
        "created_at": judge.created_at.isoformat(),
    }


class Command(BaseCommand):
    help = "List or register judges (reward models, LLM judges, rules)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list")
        listing.add_argument("--json", action="store_true")
        add = sub.add_parser("add")
        add.add_argument("name")
        add.add_argument("--kind", required=True, choices=["reward_model", "llm", "rule"])
        add.add_argument("--checkpoint", default="")
        add.add_argument("--config", default="{}", help="The kind's settings as JSON.")
        add.add_argument("--description", default="")
        add.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            judges = selectors.judge_latest_list()
            if options["json"]:
                self.stdout.write(json.dumps([judge_data(j) for j in judges], indent=2))
                return
            for judge in judges:
                target = judge.checkpoint.name if judge.checkpoint else json.dumps(judge.config)
                self.stdout.write(f"{judge.label:<30} {judge.kind:<13} {target}")
            return
        try:
            config = json.loads(options["config"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--config is not JSON: {exc}") from exc
        checkpoint = None
        try:
            if options["checkpoint"]:
                checkpoint = checkpoint_get(options["checkpoint"])
            judge = services.judge_register(
                name=options["name"],
                kind=options["kind"],
                config=config,
                checkpoint=checkpoint,
                description=options["description"],
            )
        except ApplicationError as exc:
            details = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.fields.items())
            raise CommandError(f"{exc.message} {details}".strip()) from exc
        if options["json"]:
            self.stdout.write(json.dumps(judge_data(judge), indent=2))
        else:
            self.stdout.write(f"judge {judge.label} ({judge.kind})")
