"""`manage.py leaderboard`: the same object as GET /api/v1/leaderboard, as a table or JSON."""

from __future__ import annotations

from typing import Any

import orjson
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.evaluation.apis import LeaderboardQuerySerializer
from apps.evaluation.leaderboard import format_table, leaderboard_compute


class Command(BaseCommand):
    help = (
        "Rate models from pairwise battles (Bradley-Terry, bootstrap intervals, ranks by "
        "interval) over the usable feedback, optionally sliced."
    )
    # A read-only report: the system checks (a third of a second: they import every URL
    # and API module) belong to `check`, `runserver` and `migrate`, not to each run of this.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", help="a source's name or id")
        parser.add_argument("--since", help="ISO date or date-time (inclusive)")
        parser.add_argument("--until", help="ISO date (that whole day included) or date-time")
        parser.add_argument("--tag", help="only events with this tag")
        parser.add_argument("--min-trust", type=float, help="minimum verdict trust weight, 0-1")
        parser.add_argument(
            "--meta",
            action="append",
            help="KEY=VALUE: only events whose metadata holds it (repeatable; anony=true is "
            "FastChat's standard: anonymous battles only)",
        )
        parser.add_argument(
            "--include-quarantined",
            action="store_true",
            help="also count events held for review",
        )
        parser.add_argument(
            "--bootstrap", type=int, help="bootstrap rounds (default 1000; 0: none)"
        )
        parser.add_argument("--seed", type=int, help="bootstrap seed (default 0)")
        parser.add_argument("--confidence", type=float, help="interval level (default 0.95)")
        parser.add_argument("--anchor", help="MODEL=RATING pins MODEL at RATING")
        parser.add_argument("--style-control", action="store_true", help="length covariate")
        parser.add_argument("--min-battles", type=int, help="fewer battles flags a model")
        parser.add_argument("--elo-k", type=float, help="also compute online Elo with this K")
        parser.add_argument("--exact", action="store_true", help="exact MLE point estimate")
        parser.add_argument("--format", choices=["table", "json"], default="table")

    def handle(self, *args: Any, **options: Any) -> None:
        names = [
            "source",
            "since",
            "until",
            "tag",
            "min_trust",
            "bootstrap",
            "seed",
            "confidence",
            "anchor",
            "min_battles",
            "elo_k",
        ]
        params: dict[str, Any] = {n: options[n] for n in names if options.get(n) is not None}
        params["style_control"] = options["style_control"]
        params["include_quarantined"] = options["include_quarantined"]
        if options.get("meta"):
            params["meta"] = ",".join(options["meta"])
        params["exact"] = options["exact"]
        query = LeaderboardQuerySerializer(data=params)
        if not query.is_valid():
            problems = "; ".join(
                f"--{field.replace('_', '-')}: {' '.join(str(m) for m in messages)}"
                for field, messages in query.errors.items()
            )
            raise CommandError(problems)
        board = leaderboard_compute(query.leaderboard_settings())
        if options["format"] == "json":
            self.stdout.write(orjson.dumps(board, option=orjson.OPT_INDENT_2).decode())
        else:
            self.stdout.write(format_table(board))
