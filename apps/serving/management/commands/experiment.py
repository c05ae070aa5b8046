"""`manage.py experiment list | create | start | stop | results | promote | rollback`: the
experiments API from the command line (no permission check: whoever runs manage.py is admin).

    manage.py experiment create canary-ab --alias production \\
        --arm alias:production=9 --arm checkpoint:run-12=1 [--min-events 30] [--confidence 0.95]
    manage.py experiment start canary-ab
    manage.py experiment results canary-ab [--json]
    manage.py experiment promote canary-ab [--arm run-12]
    manage.py experiment rollback canary-ab
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.exceptions import ApplicationError
from apps.serving import selectors, services


def _arm(text: str, control: bool) -> services.ArmSpec:
    target, _, weight = text.partition("=")
    kind, _, name = target.partition(":")
    if kind not in ("checkpoint", "alias") or not name:
        raise CommandError(f"--arm {text!r}: write checkpoint:NAME[=WEIGHT] or alias:NAME[=WEIGHT]")
    try:
        weight_value = int(weight or 1)
    except ValueError as exc:
        raise CommandError(f"--arm {text!r}: the weight must be a whole number") from exc
    return services.ArmSpec(**{kind: name}, weight=weight_value, is_control=control)


def format_results(results: dict[str, Any]) -> str:
    """The results as a small text table (also used by `demo_loop`)."""

    def rate(block: dict[str, Any]) -> str:
        if not block["n"]:
            return "—"
        return f"{block['rate']:.3f} [{block['lower']:.3f}, {block['upper']:.3f}] n={block['n']}"

    lines = [
        f"experiment {results['experiment']} ({results['status']}, confidence {results['confidence']})"
    ]
    lines.append(f"{'arm':<18} {'checkpoint':<28} {'thumbs up':<30} {'head to head':<30} verdict")
    for arm in results["arms"]:
        versus = arm.get("versus_control")
        if versus is None:
            verdict = "control"
        else:
            needed = versus["events_needed"]
            verdict = f"{versus['verdict']} ({versus['basis']}; still needed: {'unreachable' if needed is None else needed})"
        lines.append(
            f"{arm['arm'][:18]:<18} {arm['checkpoint'][:28]:<28} {rate(arm['thumbs']):<30} "
            f"{rate(arm['head_to_head']):<30} {verdict}"
        )
    decision = results["decision"]
    lines.append(
        f"decision: {decision['winner']} ({decision['checkpoint']}) {decision['verdict']}"
        if decision["winner"]
        else "decision: no verdict yet"
    )
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Create, run and decide A/B experiments between checkpoints."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "action", choices=["list", "create", "start", "stop", "results", "promote", "rollback"]
        )
        parser.add_argument("ref", nargs="?", help="The experiment's name (or id).")
        parser.add_argument("--alias", default="", help="create: the alias a verdict may promote")
        parser.add_argument(
            "--arm",
            action="append",
            default=[],
            help="create: checkpoint:NAME[=W] or alias:NAME[=W]; the first is the control",
        )
        parser.add_argument("--min-events", type=int, default=30)
        parser.add_argument("--confidence", type=float, default=0.95)
        parser.add_argument("--description", default="")
        parser.add_argument(
            "--promote-arm",
            "--to",
            dest="promote_arm",
            default="",
            help="promote: this arm (default: the verdict's)",
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        action, ref = options["action"], options["ref"]
        try:
            if action == "list":
                for e in selectors.experiment_list():
                    self.stdout.write(
                        f"{e.pk:>4} {e.name:<30} {e.status:<8} alias={e.alias.name if e.alias else '-'} arms={e.arm_count}"
                    )
                return
            if not ref:
                raise CommandError(f"experiment {action} needs the experiment's name")
            if action == "create":
                arms = [_arm(text, control=index == 0) for index, text in enumerate(options["arm"])]
                experiment = services.experiment_create(
                    name=ref,
                    alias=options["alias"],
                    arms=arms,
                    min_events=options["min_events"],
                    confidence=options["confidence"],
                    description=options["description"],
                )
                self.stdout.write(
                    f"experiment {experiment.name} created (draft); start it with: manage.py experiment start {experiment.name}"
                )
                return
            experiment = selectors.experiment_by_ref(ref)
            if experiment is None:
                raise CommandError(f"there is no experiment {ref!r}")
            if action == "start":
                services.experiment_start(experiment=experiment)
            elif action == "stop":
                services.experiment_stop(experiment=experiment)
            elif action == "promote":
                arm = (
                    experiment.arms.filter(name=options["promote_arm"]).first()
                    if options["promote_arm"]
                    else None
                )
                if options["promote_arm"] and arm is None:
                    raise CommandError(f"{experiment.name} has no arm {options['promote_arm']!r}")
                services.experiment_promote(experiment=experiment, arm=arm)
            elif action == "rollback":
                services.experiment_rollback(experiment=experiment)
            results = selectors.experiment_results(selectors.experiment_by_ref(str(experiment.pk)))
            self.stdout.write(
                json.dumps(results, default=str) if options["json"] else format_results(results)
            )
        except ApplicationError as exc:
            detail = (
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.fields.items())
                if exc.fields
                else exc.message
            )
            raise CommandError(detail) from exc
