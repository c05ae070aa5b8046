"""manage.py gate CANDIDATE --against ALIAS --prompts VERSION [--judge NAME] [--limit N]
                 [--line 0.5] [--json]

The offline gate, run here (not queued): CANDIDATE and the checkpoint behind ALIAS answer the
held-out prompts of dataset VERSION through the serving backends, the judge (default: the
newest reward-model judge, or JUDGES_DEFAULT_JUDGE) compares every pair in both orders, and the
gate reports the candidate's win rate with a bootstrap interval, the verdict (pass when the
interval's lower end clears the line) and the prompts it lost most clearly. The result is
recorded on the checkpoint (its gate runs) and shown on /judges/gates/<id>/. Exit status 0 on a
pass, 3 on a fail (so a deploy script can stop)."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.exceptions import ApplicationError
from apps.judges import selectors, services
from apps.registry.selectors import checkpoint_get


class Command(BaseCommand):
    help = "Gate a candidate checkpoint against an alias on held-out prompts, with a judge."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("candidate", help="Checkpoint name or id.")
        parser.add_argument("--against", required=True, help="Alias (e.g. production).")
        parser.add_argument("--prompts", required=True, help="Dataset version (its test split).")
        parser.add_argument("--judge", default="", help="NAME, NAME@VERSION or id.")
        parser.add_argument("--limit", type=int, default=None, help="At most N prompts.")
        parser.add_argument("--line", type=float, default=None, help="Pass line (default 0.5).")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            run = services.gate_run_create(
                candidate=checkpoint_get(options["candidate"]),
                against_alias=options["against"],
                dataset_version=selectors.dataset_version_get(options["prompts"]),
                judge=selectors.judge_get(options["judge"]) if options["judge"] else None,
                prompts=options["limit"],
                line=options["line"],
            )
            run = services.gate_run_execute(gate_run=run)
        except ApplicationError as exc:
            details = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.fields.items())
            raise CommandError(f"{exc.message} {details}".strip()) from exc
        results = {"gate": run.pk, "status": run.status, "seconds": run.seconds, **run.results}
        if options["json"]:
            self.stdout.write(json.dumps(results, indent=2))
        else:
            low, high = results["interval"]
            self.stdout.write(
                f"gate {run.pk}: {results['candidate']} vs {results['against']} "
                f"({results['against_alias']}), judge {results['judge']}, "
                f"{results['prompts']} prompts\n"
                f"  win rate {results['win_rate']:.3f} [{low:.3f}, {high:.3f}]  "
                f"wins {results['wins']} losses {results['losses']} ties {results['ties']}\n"
                f"  {run.status.upper()} (line {results['line']}), {run.seconds:.1f} s"
            )
            for loss in results["worst_losses"][:3]:
                self.stdout.write(f"  lost: {loss['prompt'][:80]!r}")
        if run.status != "passed":
            sys.exit(3)
